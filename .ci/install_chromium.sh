# Headless Chromium for the browser tests (Debian's `chromium`): `tests/test_dashboard.py` loads optuna-dashboard's
# page as a person would see it (`chromium --headless --no-sandbox --virtual-time-budget=15000 --dump-dom URL`).
# Sourced by .ci/run (under `set -euo pipefail`); also fine to run by hand: `source .ci/install_chromium.sh`.
# Installs the package if missing, checks that a headless page runs JavaScript, and exports
# APE_NAS_TEST_CHROMIUM. Idempotent: a second run only repeats the check.
# It never aborts the caller: when a step fails it prints the exact error, leaves APE_NAS_TEST_CHROMIUM unset, and
# the browser tests then fail (CI sets APE_NAS_REQUIRE_SERVICES=1) with that reason.

_ape_chr_bin=/usr/bin/chromium

_ape_chr_fail() {
    echo "install_chromium: FAILED: $*" >&2
    return 1
}

_ape_chr_install() {
    [[ -x "$_ape_chr_bin" ]] && return 0
    if [[ $(id -u) != 0 ]]; then
        _ape_chr_fail "$_ape_chr_bin missing and installing it needs root (apt-get install chromium)"
        return 1
    fi
    local rc=0 log=/tmp/ape_nas_apt_chromium.log
    {
        timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold chromium
    } >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 20 "$log" >&2
        _ape_chr_fail "apt-get install chromium exited with $rc (log: $log)"
        return 1
    fi
    [[ -x "$_ape_chr_bin" ]] || { _ape_chr_fail "chromium installed but $_ape_chr_bin not found"; return 1; }
}

_ape_chr_check() {  # a page whose text only JavaScript writes: the browser starts headless and runs scripts
    local out
    out=$(timeout 60 "$_ape_chr_bin" --headless --no-sandbox --disable-gpu --dump-dom \
        'data:text/html,<body><script>document.body.textContent="ape"+"-js-ok"</script></body>' 2>/dev/null) ||
        { _ape_chr_fail "$_ape_chr_bin --headless --dump-dom exited with $?"; return 1; }
    [[ "$out" == *ape-js-ok* ]] || { _ape_chr_fail "headless page did not run JavaScript: ${out:0:200}"; return 1; }
}

_ape_chr_main() {
    local t0
    t0=$(date +%s)
    _ape_chr_install || return 1
    _ape_chr_check || return 1
    echo "install_chromium: ok — $("$_ape_chr_bin" --version 2>/dev/null | head -1) ($(($(date +%s) - t0)) s)"
}

if _ape_chr_main; then
    export APE_NAS_TEST_CHROMIUM="$_ape_chr_bin"
else
    echo "install_chromium: Chromium not available; APE_NAS_TEST_CHROMIUM not set (browser tests fail in CI)" >&2
fi
unset -f _ape_chr_fail _ape_chr_install _ape_chr_check _ape_chr_main
unset _ape_chr_bin
