#!/usr/bin/env bash
# Installs what the tests need and runs them. `.ci/run` calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
# locust-plugins declares a dependency on locust, which must not be installed here (a real
# Locust would shadow lcore's `import locust` alias): install it without its dependencies,
# plus the one small dependency it really has.
python3 -m pip install --quiet --disable-pip-version-check --no-deps locust-plugins==5.0.3 typing-extensions

# Real programs some integration tests drive (Prometheus, Chromium, the PostgreSQL and
# mosquitto servers of the contrib users' tests; dockerd and debootstrap for the container
# tests, kubectl for kustomize). Installed when we can.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    need=()
    command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
    [ -x /usr/sbin/dockerd ] || command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
    [ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        # The tests start their own servers (dockerd on a private socket, no bridge): the
        # packages must not start system ones.
        no_services=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            no_services=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' > "$no_services"
            chmod +x "$no_services"
            trap 'rm -f "$no_services"' EXIT
        fi
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        [ -z "$no_services" ] || rm -f "$no_services"
        trap - EXIT
    fi
fi

python3 -m ruff check core launcher exporters bench tests
# strict on core/, mypy's defaults on launcher/ and exporters/: pyproject.toml's [tool.mypy]
python3 -m mypy
# Most tests wait on real runs of a few seconds: those run two at a time (pytest-xdist). The
# ones that measure time or CPU (tests/conftest.py lists them) run alone afterwards.
# Exit status 5 means "nothing selected" (a path given as an argument holds no such test).
# pytest-benchmark, when the environment has it, warns that xdist disables it, and every
# warning is an error here: no benchmark plugin in the parallel run (bench/ holds ours).
status=0
python3 -m pytest -n 2 -p no:benchmark -m "not serial" "$@" || { rc=$?; [ "$rc" = 5 ] || status=$rc; }
python3 -m pytest -m serial "$@" || { rc=$?; [ "$rc" = 5 ] || status=$rc; }
exit "$status"
