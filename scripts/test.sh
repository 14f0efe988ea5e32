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
scenarios=${SWARMLAB_SCENARIOS:-"lab swarm registry default ha"}
results="$here/results/test"
rm -rf "$results"; mkdir -p "$results"
passed=0 failed=0
started=$(date +%s)
step() { printf '\n==== %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }

bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

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
        read -r p f < <(python3 - "$results/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
s = ET.parse(sys.argv[1]).getroot()
s = s if s.tag == "testsuite" else s.find("testsuite")
t, fl, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(t - fl - e - sk, fl + e)
PY
)
        passed=$((passed + p)); failed=$((failed + f))
        ;;
    molecule)
        for s in $scenarios; do
            step "molecule test -s $s"
            log="$results/molecule-$s.log"
            if molecule test -s "$s" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
                passed=$((passed + 1))
            # One known transient only: the Docker API loses the output of an exec that makes
            # Ansible's remote temporary directory (community.docker#644). The whole scenario runs
            # again once, from destroy, and says so; any other failure, or a second one, fails.
            elif grep -q "failed to resolve remote temporary directory" "$log" \
                    && echo "molecule scenario $s: lost docker exec output (community.docker#644); running it once more" >&2 \
                    && molecule test -s "$s"; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
                echo "molecule scenario $s FAILED" >&2
                exit 1
            fi
        done
        ;;
    *)
        echo "unknown stage: $stage" >&2; exit 2 ;;
    esac
done
step "done"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
