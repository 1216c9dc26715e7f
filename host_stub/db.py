"""The host's one ``SQLAlchemy`` object; plugins get it as ``host.db``."""
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def sqlite_pragmas(dbapi_connection, _record) -> None:
    """For every SQLite engine of the stub (the cabinet's, the PBX's): it serves a web thread,
    worker threads and the sweeper at once. WAL lets them read while one writes, NORMAL sync
    keeps a commit off the fsync path, and the busy timeout makes writers wait their turn."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
