"""starter/cli"""
