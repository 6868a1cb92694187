# PostgreSQL for the tests (Debian's postgresql 15), no systemd: a role and a database on 127.0.0.1:5432.
# Sourced by .ci/run (under `set -euo pipefail`); also fine to run by hand: `source .ci/install_postgres.sh`.
# Installs the packages if missing, creates the cluster if missing, starts it with pg_ctlcluster, creates the
# role `apenas` (password `apenas`, CREATEDB: tests make a fresh database per test) and the database
# `apenas_test`, checks a password login over TCP, installs psycopg2-binary into the venv if it lacks it, and
# exports APE_NAS_TEST_PG_URL. Idempotent: a second run reuses the running cluster, role and database.
# It never aborts the caller: when a step fails it prints the exact error, leaves APE_NAS_TEST_PG_URL unset, and
# the PostgreSQL tests then fail (CI sets APE_NAS_REQUIRE_SERVICES=1) with that reason.

_ape_pg_user=apenas
_ape_pg_pass=apenas
_ape_pg_db=apenas_test
_ape_pg_port=5432

_ape_pg_fail() {
    echo "install_postgres: FAILED: $*" >&2
    return 1
}

_ape_pg_version() {  # newest installed server version, e.g. 15
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1) || true
    [[ -n "$dir" ]] || return 1
    basename "$(dirname "$(dirname "$dir")")"
}

_ape_pg_install() {
    if [[ -n "$(_ape_pg_version)" ]] && command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null; then
        return 0
    fi
    local created_policy=0 rc=0 log=/tmp/ape_nas_apt_postgres.log
    # the package's maintainer scripts must not try to start the service (no init system here)
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && created_policy=1
    fi
    {
        timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql postgresql-client
    } >"$log" 2>&1 || rc=$?
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc != 0)); then
        tail -n 20 "$log" >&2
        _ape_pg_fail "apt-get install postgresql exited with $rc (log: $log)"
        return 1
    fi
    [[ -n "$(_ape_pg_version)" ]] || { _ape_pg_fail "postgresql installed but no server binary found"; return 1; }
}

_ape_pg_psql() {  # psql as the postgres superuser over the local socket
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$_ape_pg_port" "$@"
}

_ape_pg_start() {
    local ver=$1 i log state
    log=/var/log/postgresql/postgresql-${ver}-main.log
    state=$(pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}')
    if [[ -z "$state" ]]; then
        timeout 120 pg_createcluster --port "$_ape_pg_port" "$ver" main >/dev/null 2>&1 ||
            { _ape_pg_fail "pg_createcluster $ver main failed"; return 1; }
    fi
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
    state=$(pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}')
    if [[ "$state" != online* ]]; then
        timeout 60 pg_ctlcluster "$ver" main start </dev/null >/dev/null 2>&1 || {
            [[ -f "$log" ]] && tail -n 15 "$log" >&2
            _ape_pg_fail "pg_ctlcluster $ver main start failed"
            return 1
        }
    fi
    for i in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p "$_ape_pg_port" && return 0
        sleep 0.5
    done
    [[ -f "$log" ]] && tail -n 15 "$log" >&2
    _ape_pg_fail "server on 127.0.0.1:$_ape_pg_port not ready after 30 s"
}

_ape_pg_setup() {
    _ape_pg_psql -d postgres >/dev/null <<SQL || { _ape_pg_fail "could not create role $_ape_pg_user"; return 1; }
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$_ape_pg_user') THEN
        CREATE ROLE $_ape_pg_user LOGIN CREATEDB PASSWORD '$_ape_pg_pass';
    ELSE
        ALTER ROLE $_ape_pg_user LOGIN CREATEDB PASSWORD '$_ape_pg_pass';
    END IF;
END
\$\$;
SQL
    local have
    have=$(_ape_pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$_ape_pg_db'") ||
        { _ape_pg_fail "could not list databases"; return 1; }
    if [[ "$have" != 1 ]]; then
        _ape_pg_psql -d postgres -c "CREATE DATABASE $_ape_pg_db OWNER $_ape_pg_user" >/dev/null ||
            { _ape_pg_fail "could not create database $_ape_pg_db"; return 1; }
    fi
    local out
    out=$(PGPASSWORD=$_ape_pg_pass timeout 10 psql -X -h 127.0.0.1 -p "$_ape_pg_port" -U "$_ape_pg_user" \
        -d "$_ape_pg_db" -tAc "SELECT current_user" 2>&1) ||
        { _ape_pg_fail "password login over TCP failed: $out"; return 1; }
}

_ape_pg_driver() {  # the Python driver, in the project's venv (it is in the `postgres` extra of `dev`)
    local py=.venv/bin/python
    [[ -x "$py" ]] || return 0
    "$py" -c "import psycopg2" 2>/dev/null && return 0
    timeout 300 "$py" -m pip install --quiet "psycopg2-binary==2.9.13" >/dev/null 2>&1 ||
        { _ape_pg_fail "pip install psycopg2-binary==2.9.13 failed"; return 1; }
}

_ape_pg_main() {
    local t0 ver
    t0=$(date +%s)
    if [[ $(id -u) != 0 ]]; then
        _ape_pg_fail "needs root (installs packages and starts the server)"
        return 1
    fi
    _ape_pg_install || return 1
    ver=$(_ape_pg_version)
    _ape_pg_start "$ver" || return 1
    _ape_pg_setup || return 1
    _ape_pg_driver || return 1
    echo "install_postgres: ok — PostgreSQL $ver on 127.0.0.1:$_ape_pg_port, database $_ape_pg_db" \
        "($(($(date +%s) - t0)) s)"
}

if _ape_pg_main; then
    export APE_NAS_TEST_PG_URL="postgresql://${_ape_pg_user}:${_ape_pg_pass}@127.0.0.1:${_ape_pg_port}/${_ape_pg_db}"
else
    echo "install_postgres: PostgreSQL not available; APE_NAS_TEST_PG_URL not set (tests needing it fail in CI)" >&2
fi
unset -f _ape_pg_fail _ape_pg_version _ape_pg_install _ape_pg_psql _ape_pg_start _ape_pg_setup _ape_pg_driver \
    _ape_pg_main
unset _ape_pg_user _ape_pg_pass _ape_pg_db _ape_pg_port
