"""The host's one ``SQLAlchemy`` object; plugins get it as ``host.db``."""
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
