"""edge relay (next issue)"""
