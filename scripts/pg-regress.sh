#!/usr/bin/env bash
# PostgreSQL's own regression suite, run twice in one go: directly against a plain
# PostgreSQL and through a fresh `tessera up` (same initdb flags and settings), with
# pg_regress from the installed PostgreSQL and the version's parallel_schedule, as a new user
# runs it: pg_regress drops and creates its database "regression" itself (through the
# coordinator, which serves every database). Prints both pass counts and the tests that pass
# directly but not through Tessera; writes the same to target/pg-regress-report.txt.
#
# A third run, the distributed variant, starts another fresh `tessera up`, runs test_setup,
# then scripts/regress/tessera_distribute.sql (onek, onek2, tenk1, tenk2 distributed by their
# first column, the small tables reference tables), then the rest of the schedule, and counts
# the tests whose output is identical to the direct run's (and, of the others, those whose
# first difference is an error, typically Tessera's honest 0A000 refusal).
#
# The suite comes from the installed version's Debian source package (a temporary deb-src
# list in a private apt state directory, so the system's package lists stay as they are);
# regress.so is built against the server headers (postgresql-server-dev-N, installed when
# missing). Needs root or sudo for apt-get, and the `postgres` OS user when run as root.
#
# Usage: scripts/pg-regress.sh [--strict]   (--strict: exit 1 when a test passes directly
#                                             but not through Tessera)
# Environment: TESSERA_REGRESS_DIR (work directory, default /var/tmp/tessera-regress),
#              TESSERA_REGRESS_SCHEDULE (a schedule file instead of parallel_schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STRICT=0
[ "${1:-}" = "--strict" ] && STRICT=1
WORK=${TESSERA_REGRESS_DIR:-/var/tmp/tessera-regress}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tessera-target}"
if [ "$(id -u)" = 0 ]; then SUDO=""; AS_PG="runuser -u postgres --"; else SUDO="sudo"; AS_PG=""; fi

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$BIN" ]; then
    echo "pg-regress: no PostgreSQL server binaries; apt-get install postgresql" >&2
    exit 2
fi
VERSION=$("$BIN/postgres" --version | awk '{print $3}')
MAJOR=${VERSION%%.*}
PG_REGRESS=/usr/lib/postgresql/$MAJOR/lib/pgxs/src/test/regress/pg_regress
mkdir -p "$WORK"
chmod 755 "$WORK"

# 1. The regression suite of this exact version.
SRC="$WORK/postgresql-$VERSION/src/test/regress"
if [ ! -f "$SRC/parallel_schedule" ]; then
    echo "pg-regress: fetching the PostgreSQL $VERSION source package"
    mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/parts"
    : > "$WORK/apt/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' "$f" >> "$WORK/apt/sources.list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -q debian "$f" &&
            sed 's/^Types: deb$/Types: deb-src/' "$f" > "$WORK/apt/parts/$(basename "$f")"
    done
    APT=(-o "Dir::Etc::sourcelist=$WORK/apt/sources.list" -o "Dir::Etc::sourceparts=$WORK/apt/parts"
         -o "Dir::State::Lists=$WORK/apt/lists")
    $SUDO apt-get "${APT[@]}" update >/dev/null
    # The installed version's source, else the nearest one the mirror still has (a minor
    # release apart: both runs use the same files, so the comparison stays fair).
    INSTALLED=$(dpkg-query -W -f='${Version}' "postgresql-$MAJOR")
    FETCHED=""
    for v in "$INSTALLED" $(apt-cache "${APT[@]}" showsrc "postgresql-$MAJOR" | awk '/^Version:/ {print $2}' | sort -rV); do
        rm -f "$WORK"/postgresql-"$MAJOR"_*
        if (cd "$WORK" && $SUDO apt-get "${APT[@]}" source --download-only "postgresql-$MAJOR=$v" >/dev/null 2>&1); then
            FETCHED=$v
            break
        fi
    done
    [ -n "$FETCHED" ] || { echo "pg-regress: no source package of postgresql-$MAJOR could be fetched" >&2; exit 2; }
    [ "$FETCHED" = "$INSTALLED" ] || echo "pg-regress: using the regression suite of $FETCHED (server is $INSTALLED)"
    tar -xf "$WORK"/postgresql-"$MAJOR"_*.orig.tar.* -C "$WORK"
    SRC_DIR=$(ls -d "$WORK"/postgresql-"$MAJOR".*/ | head -1)
    mv "$SRC_DIR" "$WORK/postgresql-$VERSION" 2>/dev/null || true
fi

# 2. regress.so, built against the server headers.
if [ ! -d "/usr/include/postgresql/$MAJOR/server" ]; then
    echo "pg-regress: installing postgresql-server-dev-$MAJOR"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "postgresql-server-dev-$MAJOR" >/dev/null
fi
mkdir -p "$WORK/lib"
# regress.so, and the contrib/spi modules the triggers test loads (autoinc, refint).
build_module() { # name source
    [ -f "$WORK/lib/$1.so" ] || gcc -O1 -fPIC -shared -I"/usr/include/postgresql/$MAJOR/server" \
        -I"/usr/include/postgresql/internal" -o "$WORK/lib/$1.so" "$2"
}
build_module regress "$SRC/regress.c"
SPI="$WORK/postgresql-$VERSION/contrib/spi"
if [ ! -d "$SPI" ]; then
    tar -xf "$WORK"/postgresql-"$MAJOR"_*.orig.tar.* -C "$WORK" --wildcards '*/contrib/spi' 2>/dev/null || true
    SPI_DIR=$(ls -d "$WORK"/postgresql-"$MAJOR".*/contrib/spi 2>/dev/null | head -1)
    if [ -n "$SPI_DIR" ] && [ "$SPI_DIR" != "$SPI/" ]; then
        mkdir -p "$WORK/postgresql-$VERSION/contrib" && cp -r "$SPI_DIR" "$SPI"
    fi
fi
[ -f "$SPI/autoinc.c" ] && build_module autoinc "$SPI/autoinc.c" && build_module refint "$SPI/refint.c"
chmod -R a+rX "$WORK/lib" "$WORK/postgresql-$VERSION"

# 3. Servers: Tessera (debug build, as the tests use) and a plain PostgreSQL beside it.
cargo build -q -p tessera
TESSERA="$CARGO_TARGET_DIR/debug/tessera"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RUN="$WORK/run"
rm -rf "$RUN"
mkdir -p "$RUN"
chmod 777 "$RUN"
BASE_PORT=$(free_port)
TESSERA_PORT=$(( 20000 + RANDOM % 20000 ))
TESSERA_PID=""
cleanup() {
    [ -n "$TESSERA_PID" ] && kill -INT "$TESSERA_PID" 2>/dev/null && wait "$TESSERA_PID" 2>/dev/null || true
    [ -f "$RUN/baseline/postmaster.pid" ] && $AS_PG "$BIN/pg_ctl" -D "$RUN/baseline" stop -m fast >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$TESSERA" up --data-dir "$RUN/tessera" --port "$TESSERA_PORT" > "$RUN/tessera.log" 2>&1 &
TESSERA_PID=$!
for _ in $(seq 1 120); do
    grep -q "tessera is ready" "$RUN/tessera.log" 2>/dev/null && break
    kill -0 "$TESSERA_PID" 2>/dev/null || { cat "$RUN/tessera.log" >&2; exit 2; }
    sleep 1
done
grep -q "tessera is ready" "$RUN/tessera.log" || { echo "pg-regress: tessera up did not start" >&2; exit 2; }

mkdir -p "$RUN/baseline" && chmod 700 "$RUN/baseline"
[ -n "$AS_PG" ] && chown postgres "$RUN/baseline"
$AS_PG "$BIN/initdb" -D "$RUN/baseline" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
# The coordinator's settings, on another port.
sed -e "s/^port = .*/port = $BASE_PORT/" -e "s#^unix_socket_directories = .*#unix_socket_directories = '$RUN'#" \
    "$RUN/tessera/coordinator/tessera.conf" > "$RUN/baseline/tessera.conf"
echo "include_if_exists = 'tessera.conf'" >> "$RUN/baseline/postgresql.conf"
[ -n "$AS_PG" ] && chown postgres "$RUN/baseline/tessera.conf"
$AS_PG "$BIN/pg_ctl" -D "$RUN/baseline" -l "$RUN/baseline.log" -w start >/dev/null

# 4. The suite, twice.
SCHEDULE=${TESSERA_REGRESS_SCHEDULE:-$SRC/parallel_schedule}
run_suite() { # name port
    local out="$RUN/$1"
    mkdir -p "$out/results"
    chmod 777 "$out" "$out/results"
    (cd "$out" && timeout 2400 "$PG_REGRESS" --inputdir="$SRC" --outputdir="$out" --bindir="$BIN" \
        --dlpath="$WORK/lib" --schedule="$SCHEDULE" \
        --host=127.0.0.1 --port="$2" --user=postgres > "$out/summary.txt" 2>&1) || true
    # "test name ... ok" / "     name ... FAILED" (PostgreSQL 15's pg_regress output)
    awk '$0 ~ /\.\.\. (ok|FAILED|failed)/ { for (i = 1; i <= NF; i++) if ($i == "...") { print $(i-1), $(i+1); break } }' \
        "$out/summary.txt" | sort > "$out/outcomes.txt"
}
run_suite direct "$BASE_PORT"
run_suite tessera "$TESSERA_PORT"

# 5. The distributed variant, on a fresh Tessera.
kill -INT "$TESSERA_PID" 2>/dev/null && wait "$TESSERA_PID" 2>/dev/null || true
TESSERA_PID=""
VARIANT_SRC="$RUN/variant-src"
mkdir -p "$VARIANT_SRC"
cp -r "$SRC/sql" "$SRC/expected" "$VARIANT_SRC/"
ln -s "$SRC/data" "$VARIANT_SRC/data"
[ -d "$SRC/input" ] && ln -s "$SRC/input" "$VARIANT_SRC/input"
[ -d "$SRC/output" ] && ln -s "$SRC/output" "$VARIANT_SRC/output"
cp "$ROOT/scripts/regress/tessera_distribute.sql" "$VARIANT_SRC/sql/"
: > "$VARIANT_SRC/expected/tessera_distribute.out"
chmod -R a+rX "$VARIANT_SRC"
{
    echo "test: test_setup"
    echo "test: tessera_distribute"
    grep -v '^test: test_setup$' "$SCHEDULE"
} > "$VARIANT_SRC/schedule"
"$TESSERA" up --data-dir "$RUN/tessera-variant" --port "$TESSERA_PORT" > "$RUN/tessera-variant.log" 2>&1 &
TESSERA_PID=$!
for _ in $(seq 1 120); do
    grep -q "tessera is ready" "$RUN/tessera-variant.log" 2>/dev/null && break
    sleep 1
done
VARIANT_RAN=0
if grep -q "tessera is ready" "$RUN/tessera-variant.log"; then
    out="$RUN/variant"
    mkdir -p "$out/results"
    chmod 777 "$out" "$out/results"
    (cd "$out" && timeout 1800 "$PG_REGRESS" --inputdir="$VARIANT_SRC" --outputdir="$out" --bindir="$BIN" \
        --dlpath="$WORK/lib" --schedule="$VARIANT_SRC/schedule" \
        --host=127.0.0.1 --port="$TESSERA_PORT" --user=postgres > "$out/summary.txt" 2>&1) || true
    VARIANT_RAN=1
fi

count() { grep -c " ok$" "$1" || true; }
total() { wc -l < "$1" | tr -d ' '; }
D="$RUN/direct/outcomes.txt"
T="$RUN/tessera/outcomes.txt"
LOST=$(join <(awk '$2 == "ok" {print $1}' "$D") <(awk '$2 != "ok" {print $1}' "$T") || true)
MISSING=$(comm -23 <(awk '$2 == "ok" {print $1}' "$D") <(awk '{print $1}' "$T") || true)
mkdir -p "$ROOT/target"
{
    echo "pg_regress $VERSION parallel_schedule (database regression, created by pg_regress)"
    echo "  directly:       $(count "$D") of $(total "$D") tests pass"
    echo "  through Tessera: $(count "$T") of $(total "$T") tests pass"
    echo "  pass directly, fail through Tessera: $(echo "$LOST" | grep -c . || true)"
    [ -n "$LOST" ] && echo "$LOST" | sed 's/^/    /'
    if [ -n "$MISSING" ]; then
        echo "  pass directly, not reached through Tessera: $(echo "$MISSING" | grep -c .)"
        echo "$MISSING" | tr '\n' ' ' | fold -s -w 96 | sed 's/^/    /'
        echo
    fi
    echo "  diffs: $RUN/tessera/regression.diffs"
    if [ "$VARIANT_RAN" = 1 ]; then
        SAME=0; ERRORED=0; OTHER=0
        for f in "$RUN"/direct/results/*.out; do
            t=$(basename "$f" .out)
            [ "$t" = test_setup ] && continue
            v="$RUN/variant/results/$t.out"
            if [ -f "$v" ] && cmp -s "$f" "$v"; then
                SAME=$((SAME + 1))
                continue
            fi
            first=""
            [ -f "$v" ] && first=$( (diff "$f" "$v" || true) | grep '^>' | head -1 || true)
            case "$first" in
                "> ERROR:"*"not supported"* | "> ERROR:"*Tessera*) ERRORED=$((ERRORED + 1)) ;;
                *) OTHER=$((OTHER + 1)) ;;
            esac
        done
        echo "distributed variant (onek, onek2, tenk1, tenk2 distributed; small tables reference tables):"
        echo "  output identical to the direct run: $SAME of $((SAME + ERRORED + OTHER)) tests"
        echo "  first difference is Tessera's refusal (0A000): $ERRORED; other differences: $OTHER"
        echo "  results: $RUN/variant/results"
    fi
} | tee "$ROOT/target/pg-regress-report.txt"
if [ "$STRICT" = 1 ] && { [ -n "$LOST" ] || [ -n "$MISSING" ]; }; then
    exit 1
fi
