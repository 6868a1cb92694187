#!/usr/bin/env bash
# A shared MLflow tracking server for a team: PostgreSQL backend store, an artifact directory served through
# the server (clients need no access to it), bound to 127.0.0.1 unless MLFLOW_HOST says otherwise, and with
# MLflow's basic-auth app (users and passwords) when MLFLOW_AUTH=basic.
#
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:secret@db-host:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=/srv/mlflow/artifacts \
#   mlflow/serve.sh                      # then: ape-nas sweep ... --tracking-uri http://127.0.0.1:5000
#
# Settings (environment, or a file given as $1 with KEY=value lines, e.g. mlflow/server.env.example):
#   MLFLOW_BACKEND_STORE_URI      required: database URL (PostgreSQL for a shared server)
#   MLFLOW_ARTIFACTS_DESTINATION  required: directory (or s3://...) where artifacts are stored
#   MLFLOW_HOST                   default 127.0.0.1 (this machine only). Any other address (0.0.0.0 ...) is
#                                 refused without authentication (MLFLOW_AUTH=basic) unless MLFLOW_INSECURE=1;
#                                 also set MLFLOW_ALLOWED_HOSTS to the names clients use
#   MLFLOW_PORT                   default 5000
#   MLFLOW_WORKERS                default 2 (each worker ≈ 250 MB)
#   MLFLOW_ALLOWED_HOSTS          optional, passed to --allowed-hosts
# Authentication (`mlflow server --app-name basic-auth`, needs `pip install 'ape-nas[auth]'`):
#   MLFLOW_AUTH                   basic (on; also implied by MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD) or none
#   MLFLOW_AUTH_ADMIN_USERNAME    admin user, created on the first start against an empty auth database
#   MLFLOW_AUTH_ADMIN_PASSWORD    its password (12+ characters); used only to create the admin
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what every signed-in user may do on others' experiments: READ (default),
#                                 USE, EDIT, MANAGE or NO_PERMISSIONS. Requests without credentials: always 401
#   MLFLOW_AUTH_DATABASE_URI      users and permissions (default: sqlite beside a SQLite backend store, else
#                                 ${XDG_STATE_HOME:-~/.local/state}/ape-nas/mlflow-auth.db); keep it
#   MLFLOW_FLASK_SERVER_SECRET_KEY  CSRF key of the sign-up form (default: a random one per start)
# Credentials go into a private file (mode 600, removed at exit) named by MLFLOW_AUTH_CONFIG_PATH: never onto
# a command line (ps) or into the output. Clients sign in with MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD.
set -euo pipefail
if [[ $# -ge 1 ]]; then
  set -a
  # shellcheck disable=SC1090
  source "$1"
  set +a
fi
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (e.g. postgresql://user:pass@host:5432/mlflow)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (a directory shared by nobody but the server)}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
py="${PYTHON:-python3}"

auth="${MLFLOW_AUTH:-}"
if [[ -z "$auth" && (-n "${MLFLOW_AUTH_ADMIN_USERNAME:-}" || -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}") ]]; then
  auth=basic
fi
case "$auth" in
  basic) ;;
  "" | none) auth=none ;;
  *)
    echo "serve.sh: MLFLOW_AUTH=$auth: expected basic or none" >&2
    exit 2
    ;;
esac
case "$host" in
  127.0.0.1 | localhost | ::1) ;;
  *)
    if [[ "$auth" != basic && "${MLFLOW_INSECURE:-0}" != 1 ]]; then
      echo "serve.sh: refusing to serve on $host without authentication: set MLFLOW_AUTH=basic and MLFLOW_AUTH_ADMIN_USERNAME/MLFLOW_AUTH_ADMIN_PASSWORD (mlflow/README.md), or MLFLOW_INSECURE=1 to expose it to anyone who can reach $host:$port" >&2
      exit 2
    fi
    ;;
esac

# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; ape-nas[postgres] installs psycopg2: name the driver present.
with_pg_driver() {
  case "$1" in
    postgresql://* | postgres://*)
      if "$py" -c 'import psycopg' 2>/dev/null; then
        printf '%s' "$1"
      elif "$py" -c 'import psycopg2' 2>/dev/null; then
        printf '%s' "postgresql+psycopg2://${1#*://}"
      else
        echo "serve.sh: no PostgreSQL driver for $py: pip install 'ape-nas[postgres]'" >&2
        return 2
      fi
      ;;
    *) printf '%s' "$1" ;;
  esac
}
store="$(with_pg_driver "$MLFLOW_BACKEND_STORE_URI")" || exit 2
case "$MLFLOW_ARTIFACTS_DESTINATION" in
  *://*) ;;
  *) mkdir -p "$MLFLOW_ARTIFACTS_DESTINATION" ;;
esac
extra=()
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
  extra+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi

private=""
cleanup() { if [[ -n "$private" ]]; then rm -rf "$private"; fi; }
trap cleanup EXIT
auth_note=""
if [[ "$auth" == basic ]]; then
  : "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME (the admin user of the basic-auth app)}"
  : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (12+ characters; used to create the admin)}"
  if ! "$py" -c 'import flask_wtf' 2>/dev/null; then
    echo "serve.sh: MLflow's basic-auth app needs Flask-WTF for $py: pip install 'ape-nas[auth]'" >&2
    exit 2
  fi
  permission="${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}"
  case "$permission" in
    READ | USE | EDIT | MANAGE | NO_PERMISSIONS) ;;
    *)
      echo "serve.sh: MLFLOW_AUTH_DEFAULT_PERMISSION=$permission: expected READ, USE, EDIT, MANAGE or NO_PERMISSIONS" >&2
      exit 2
      ;;
  esac
  auth_db="${MLFLOW_AUTH_DATABASE_URI:-}"
  if [[ -z "$auth_db" ]]; then
    case "$MLFLOW_BACKEND_STORE_URI" in
      sqlite:///*.db) auth_db="${MLFLOW_BACKEND_STORE_URI%.db}-auth.db" ;;
      *)
        state="${XDG_STATE_HOME:-$HOME/.local/state}/ape-nas"
        mkdir -p "$state"
        auth_db="sqlite:///$state/mlflow-auth.db"
        ;;
    esac
  fi
  auth_db="$(with_pg_driver "$auth_db")" || exit 2
  # the CSRF key of the sign-up form must be the same in every worker: one per start unless given
  if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
    MLFLOW_FLASK_SERVER_SECRET_KEY="$("$py" -c 'import secrets; print(secrets.token_hex(32))')"
  fi
  export MLFLOW_FLASK_SERVER_SECRET_KEY
  private="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/ape-nas-mlflow-auth.XXXXXX")"
  ini="$private/basic_auth.ini"
  # configparser interpolates '%': write it doubled. printf is a builtin: the values never reach an argv.
  (
    umask 077
    {
      printf '[mlflow]\n'
      printf 'default_permission = %s\n' "$permission"
      printf 'database_uri = %s\n' "${auth_db//%/%%}"
      printf 'admin_username = %s\n' "${MLFLOW_AUTH_ADMIN_USERNAME//%/%%}"
      printf 'admin_password = %s\n' "${MLFLOW_AUTH_ADMIN_PASSWORD//%/%%}"
      printf 'authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n'
    } >"$ini"
  )
  chmod 600 "$ini"
  export MLFLOW_AUTH_CONFIG_PATH="$ini"
  # MLflow reads these variables before the file: the file alone carries them into the server
  unset MLFLOW_AUTH_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD
  extra+=(--app-name basic-auth)
  auth_note=", basic auth (default permission $permission)"
elif [[ "$host" != 127.0.0.1 && "$host" != localhost && "$host" != ::1 ]]; then
  echo "serve.sh: warning: MLFLOW_INSECURE=1: anyone who can reach $host:$port can read and change every run" >&2
fi

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
echo "MLflow tracking server: http://${host}:${port}  (store ${MLFLOW_BACKEND_STORE_URI%%://*}://…, artifacts ${MLFLOW_ARTIFACTS_DESTINATION}${auth_note})"
# The server (mlflow's CLI and its uvicorn child) runs in its own process group, so that a stop of this
# script (Ctrl+C, kill <pid>) reaches uvicorn too and nothing is left listening on the port; the script stays
# alive meanwhile to remove the private auth file at the end.
set -m
"$py" -m mlflow server \
  --backend-store-uri "$store" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "$host" --port "$port" --workers "$workers" "${extra[@]}" &
server=$!
set +m
stopping=0
stop() {
  if [[ $stopping == 0 ]]; then
    stopping=1
    kill -TERM -- "-$server" 2>/dev/null || true
  else
    kill -KILL -- "-$server" 2>/dev/null || true
  fi
}
trap stop INT TERM HUP
rc=0
while :; do
  if wait "$server"; then rc=0; else rc=$?; fi
  kill -0 "$server" 2>/dev/null || break
done
# leftovers of the group (a uvicorn child whose parent is gone): 15 s of grace, then SIGKILL
for _ in $(seq 75); do
  kill -0 -- "-$server" 2>/dev/null || break
  kill -TERM -- "-$server" 2>/dev/null || true
  sleep 0.2
done
kill -KILL -- "-$server" 2>/dev/null || true
if [[ $stopping == 1 ]]; then
  exit 0
fi
exit "$rc"
