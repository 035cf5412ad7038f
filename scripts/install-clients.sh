#!/usr/bin/env bash
# Installs the client drivers of the client matrix (tests/clients.rs), each from its own
# ecosystem's registry: psycopg 3 and SQLAlchemy 2 from PyPI, node-postgres from npm (the
# versions in tests/clients/node/package-lock.json), pgjdbc from Debian
# (libpostgresql-jdbc-java). Needs python3 with pip, node with npm and java; run as root or
# with sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
# The runtimes themselves, from Debian when the machine lacks them.
missing=()
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import psycopg, sqlalchemy' 2>/dev/null; then
    packages=("psycopg[binary]>=3.1,<4" "sqlalchemy>=2,<3")
    # Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
    python3 -m pip install -q --root-user-action=ignore "${packages[@]}" ||
        python3 -m pip install -q --root-user-action=ignore --break-system-packages "${packages[@]}"
fi
[ -d tests/clients/node/node_modules/pg-copy-streams ] ||
    (cd tests/clients/node && npm ci --no-audit --no-fund --silent)
if [ ! -f /usr/share/java/postgresql.jar ]; then
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libpostgresql-jdbc-java >/dev/null
fi
echo "client drivers: psycopg $(python3 -c 'import psycopg; print(psycopg.__version__)'), SQLAlchemy $(python3 -c 'import sqlalchemy; print(sqlalchemy.__version__)'), node-postgres $(node -p "require('./tests/clients/node/node_modules/pg/package.json').version"), pgjdbc $(dpkg-query -W -f='${Version}' libpostgresql-jdbc-java)"
