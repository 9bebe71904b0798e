from edge_relay.main import main

main()
