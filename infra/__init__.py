"""infra (issue 6)"""
