#!/usr/bin/env bash
# Every test of the collection, from a fresh machine: set-up, linters, ansible-test sanity, pytest
# (unit, integration against real servers, app, manifests), then the Molecule scenarios on the lab.
# Usage: scripts/test.sh [stage ...]   stages: lint sanity pytest molecule (default: all)
# SWARMLAB_SCENARIOS overrides the list of Molecule scenarios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(lint sanity pytest molecule)
scenarios=${SWARMLAB_SCENARIOS:-"lab swarm ha default"}
for stage in "${stages[@]}"; do
    # Before anything runs: a typo must not cost a run of the scenarios first.
    case $stage in lint|sanity|pytest|molecule) ;; *) echo "unknown stage: $stage" >&2; exit 2 ;; esac
done
# With Molecule and other stages asked for, the other stages (lint, sanity, pytest: a log of their
# own) run while these scenarios run: each side leaves a good part of the 2 CPUs idle (servers and
# Sentinel timeouts, drains, docker exec), so together they take less than one after the other (on
# our slower 2-core machines pytest and the lab, swarm, registry and ha scenarios of the time took
# 20 min side by side, 25 in turn). The default scenario's drills put load on the stack and count
# lost writes and failed requests: it runs after, on its own.
# SWARMLAB_ALONGSIDE="" runs everything in turn.
alongside=${SWARMLAB_ALONGSIDE-"lab swarm"}
# These start once the other stages have ended, beside default's create, check, converge and
# idempotence (Ansible runs, not load tests): default's verify waits until they have ended
# (SWARMLAB_VERIFY_AFTER, molecule/conftest.py), and fails if they did. Their log:
# results/test/later.log. SWARMLAB_LATER="" runs them in turn instead.
later=${SWARMLAB_LATER-"ha"}
results="$here/results/test"
# SWARMLAB_TEST_STARTED: set for the run of the other stages beside the scenarios (below).
nested=${SWARMLAB_TEST_STARTED:-}
[ -n "$nested" ] || { rm -rf "$results"; mkdir -p "$results"; }
passed=0 failed=0
started=${nested:-$(date +%s)}
step() { printf '\n==== %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
# Molecule prints no times: each of its action lines ("➜ converge: Executing") gets the seconds since
# the run started, so a CI log says where a scenario's time goes.
stamp() {
    python3 -uc '
import sys, time
start, out = float(sys.argv[1]), sys.stdout.buffer
for line in sys.stdin.buffer:
    if b"INFO" in line and (b"Executing" in line or b"Executed:" in line):
        line = b"[%4.0fs] %s" % (time.time() - start, line)
    out.write(line)
    out.flush()
' "$started"
}

count_pytest() {
    local p f
    read -r p f < <(python3 - "$results/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
s = ET.parse(sys.argv[1]).getroot()
s = s if s.tag == "testsuite" else s.find("testsuite")
t, fl, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(t - fl - e - sk, fl + e)
PY
)
    passed=$((passed + p)); failed=$((failed + f))
}
# A CI log shows only its tail, where destroy's long output buries the failure: the failed tasks
# (the last ones, as the rescued failures of bad-input checks come first) and the verifier's failed
# tests (pytest's -ra summary, its E lines, or why it stopped; Molecule boxes the verifier's output in
# "│ " lines) are printed again at the end.
failed_tasks() {
    echo "---- failed tasks in $1 ----"
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E -A 12 '(fatal|failed): \[|FAILED!|^ERROR!|ERROR +Ansible return code' \
        | cut -c1-300 | tail -n 150 || true
    echo "---- failed tests in $1 ----"
    sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '(FAILED|ERROR) [^ ]+\.py::|(^|│ )E  |Exit: |[0-9]+ (failed|error)' \
        | cut -c1-400 | tail -n 60 || true
}
run_scenario() {
    local s=$1 log="$results/molecule-$1.log" last
    last=$log
    rm -f "$log.retry"
    step "molecule test -s $s"
    if molecule test -s "$s" 2>&1 | stamp | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        passed=$((passed + 1))
    # One known transient only: the Docker API loses the output of an exec that makes
    # Ansible's remote temporary directory (community.docker#644). The whole scenario runs
    # again once, from destroy, and says so; any other failure, or a second one, fails.
    elif grep -q "failed to resolve remote temporary directory" "$log" \
            && echo "molecule scenario $s: lost docker exec output (community.docker#644); running it once more" >&2 \
            && last=$log.retry \
            && { molecule test -s "$s" 2>&1 | stamp | tee "$last"; [ "${PIPESTATUS[0]}" -eq 0 ]; }; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_tasks "$last" >&2
        # default's verify stops when the scenarios run beside it failed: theirs is the failure to show.
        if [ -n "${SWARMLAB_VERIFY_AFTER:-}" ] && [ "$(cat "$SWARMLAB_VERIFY_AFTER" 2>/dev/null || echo 0)" != 0 ]; then
            local sc
            for sc in "${after[@]}"; do
                [ ! -s "$results/molecule-$sc.log" ] || failed_tasks "$results/molecule-$sc.log" >&2
            done
            echo "molecule scenario(s) ${after[*]} FAILED" >&2
        fi
        echo "molecule scenario $s FAILED" >&2
        exit 1
    fi
}

# Which scenarios run beside the other stages, which after them beside default, and which stages
# those are.
others=() beside=() after=()
for stage in "${stages[@]}"; do [ "$stage" = molecule ] || others+=("$stage"); done
if [ -z "$nested" ] && [ ${#others[@]} -gt 0 ] && [[ " ${stages[*]} " == *" molecule "* ]]; then
    for sc in $alongside; do [[ " $scenarios " != *" $sc "* ]] || beside+=("$sc"); done
    # (Only with scenarios beside the other stages: they are what the later ones wait behind.)
    if [ ${#beside[@]} -gt 0 ] && [[ " $scenarios " == *" default "* ]]; then
        for sc in $later; do [[ " $scenarios " != *" $sc "* || " ${beside[*]} " == *" $sc "* ]] || after+=("$sc"); done
    fi
fi
others_pid='' others_rc='' later_pid=''
later_done="$results/later.status" later_pidfile="$results/later.pid"
# A failing scenario ends the run, and the other stages' and the later scenarios' runs with it
# (each in its own session).
trap '[ -z "$others_pid" ] || kill -- -"$others_pid" 2>/dev/null || true
      [ -z "$later_pid" ] || [ ! -s "$later_pidfile" ] || kill -- -"$(cat "$later_pidfile")" 2>/dev/null || true' EXIT

# In the run of the later scenarios: wait until the other stages have ended, so that they never
# run beside those and default at once (2 CPUs).
if [ -n "${SWARMLAB_LATER_AFTER_PID:-}" ]; then
    echo $$ > "$later_pidfile"
    while kill -0 "$SWARMLAB_LATER_AFTER_PID" 2>/dev/null; do sleep 5; done
    step "${SWARMLAB_SCENARIOS:-}: the other stages have ended"
fi

[ -n "$nested" ] || bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

# The other stages, once they have ended (`wait`: until they have): their log, and a failure ends
# the run there, between two scenarios, not after all of them.
others_ended() {
    [ -z "$others_rc" ] || return 0
    [ "${1:-}" = wait ] || ! kill -0 "$others_pid" 2>/dev/null || return 0
    others_rc=0; wait "$others_pid" || others_rc=$?
    others_pid=
    cat "$results/others.log"
    [ "$others_rc" -eq 0 ] || { echo "${others[*]} FAILED (exit $others_rc)" >&2; exit 1; }
}

if [ ${#beside[@]} -gt 0 ]; then
    step "${others[*]} (log: results/test/others.log), beside the scenarios ${beside[*]}"
    SWARMLAB_TEST_STARTED=$started setsid bash "$0" "${others[@]}" > "$results/others.log" 2>&1 &
    others_pid=$!
    for sc in "${beside[@]}"; do others_ended; run_scenario "$sc"; done
    if [ ${#after[@]} -gt 0 ]; then
        others_ended
        step "${after[*]} once ${others[*]} have ended, beside default until its verify (log: results/test/later.log)"
        rm -f "$later_done" "$later_pidfile"
        { rc=0
          SWARMLAB_TEST_STARTED=$started SWARMLAB_SCENARIOS="${after[*]}" SWARMLAB_LATER_AFTER_PID="${others_pid:-}" \
              setsid bash "$0" molecule > "$results/later.log" 2>&1 || rc=$?
          echo "$rc" > "$later_done"; } &
        later_pid=$!
        export SWARMLAB_VERIFY_AFTER=$later_done
    else
        [ -n "$others_rc" ] || step "${others[*]}: waiting for them"
        others_ended wait
        [[ " ${others[*]} " != *" pytest "* ]] || count_pytest
    fi
    stages=(molecule)
fi

for stage in "${stages[@]}"; do
    case $stage in
    lint)
        step "yamllint"
        yamllint --strict .
        step "antsibull-changelog lint (changelogs/fragments)"
        antsibull-changelog lint
        step "ansible-lint (production profile)"
        # Molecule installs a copy of the collection into ~/.ansible; an old copy there would be
        # linted against instead of this checkout.
        rm -rf "$HOME/.ansible/collections/ansible_collections/swarmlab/cluster"
        ansible-lint --offline
        if [ -x scripts/render_k8s.sh ]; then
            step "k8s/ manifests match the k8s_app role's output"
            bash scripts/render_k8s.sh --check
        fi
        ;;
    sanity)
        step "ansible-test sanity"
        bash scripts/sanity.sh
        ;;
    pytest)
        step "pytest"
        # Exit 5 (no test collected) is a failure here, like any other non-zero exit. Two workers
        # (pytest-xdist), a test file on one worker: most tests wait on real servers (Sentinel
        # timeouts, gunicorn, ansible-playbook), so two overlap on 2 cores (12.3 -> about 7 min).
        pytest tests -n 2 --dist loadfile --junitxml="$results/pytest.xml" -p no:cacheprovider
        [ -n "$nested" ] || count_pytest
        ;;
    molecule)
        for sc in $scenarios; do
            [[ " ${beside[*]} ${after[*]} " == *" $sc "* ]] || run_scenario "$sc"
        done
        ;;
    *)
        echo "unknown stage: $stage" >&2; exit 2 ;;
    esac
done
if [ -n "$later_pid" ]; then
    [ -s "$later_done" ] || step "${after[*]}: waiting for them"
    wait "$later_pid" || true
    later_pid=''
    cat "$results/later.log"
    [ "$(cat "$later_done" 2>/dev/null)" = 0 ] || { echo "molecule scenario(s) ${after[*]} FAILED" >&2; exit 1; }
    passed=$((passed + ${#after[@]}))
    others_ended wait
    [[ " ${others[*]} " != *" pytest "* ]] || count_pytest
fi
step "done${nested:+ (${stages[*]})}"
[ -n "$nested" ] || echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
