"""starter/api/routes"""
