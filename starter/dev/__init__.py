"""starter/dev"""
