#!/usr/bin/env bash
# Step "gate": run imagegate with the inputs (from env only). Its exit code is the action's:
# 0 passed, 1 a rule that breaks the build was violated (0 when strict is false), 2 bad input,
# 3 the gate could not finish. imagegate itself writes the step outputs digest, ref and
# verdict, the step summary and the annotations (it sees GITHUB_ACTIONS=true).
set -euo pipefail
set -f  # the blank-separated inputs are split, never expanded as globs

fail() {
    printf '::error title=imagegate::%s\n' "$*"
    exit 2
}

[[ -n "$INPUT_IMAGE" ]] || fail "the image input is empty"
args=(gate "$INPUT_IMAGE" -o table)
if [[ -n "$INPUT_KEY" ]]; then args+=(--key "$INPUT_KEY"); fi
case "$INPUT_DRY_RUN" in
    true) args+=(--dry-run) ;;
    false) ;;
    *) fail "dry-run is '$INPUT_DRY_RUN'; it must be true or false" ;;
esac
case "$INPUT_STRICT" in
    true) ;;
    false) args+=(--warn-only) ;;
    *) fail "strict is '$INPUT_STRICT'; it must be true or false" ;;
esac
for p in $INPUT_POLICY; do args+=(--policy "$p"); done
for r in $INPUT_RULES; do args+=(--rules "$r"); done
if [[ -n "$INPUT_VULNS" ]]; then args+=(--vulns "$INPUT_VULNS"); fi
if [[ -n "$INPUT_SARIF" ]]; then
    mkdir -p "$(dirname "$INPUT_SARIF")"
    args+=(-o "sarif=$INPUT_SARIF")
fi
if [[ -n "$INPUT_CONTAINERFILE" ]]; then args+=(--containerfile "$INPUT_CONTAINERFILE"); fi
for a in $INPUT_ARGS; do args+=("$a"); done

code=0
if [[ "$INPUT_INSTALL" == container ]]; then
    image="${INPUT_CONTAINER_IMAGE//\{version\}/$INPUT_VERSION}"
    # The runner's user, the workspace and $RUNNER_TEMP (step output files, cloud credential
    # files) at the same paths; key and registry settings passed by name, never by value.
    run=(docker run --rm --network host -u "$(id -u):$(id -g)"
        -v "$GITHUB_WORKSPACE:$GITHUB_WORKSPACE" -v "$RUNNER_TEMP:$RUNNER_TEMP"
        -w "$PWD" -e HOME=/tmp -e GITHUB_ACTIONS -e GITHUB_OUTPUT -e GITHUB_STEP_SUMMARY)
    for file in "$GITHUB_OUTPUT" "$GITHUB_STEP_SUMMARY"; do
        case "$file" in
            "$RUNNER_TEMP"/*) ;;
            *) run+=(-v "$(dirname "$file"):$(dirname "$file")") ;;
        esac
    done
    docker_config="${DOCKER_CONFIG:-$HOME/.docker}"
    if [[ -f "$docker_config/config.json" ]]; then
        run+=(-v "$docker_config:/imagegate-docker:ro" -e DOCKER_CONFIG=/imagegate-docker)
    fi
    while IFS= read -r name; do
        run+=(-e "$name")
    done < <(compgen -e | grep -E '^(AWS_|VAULT_|BAO_|GOOGLE_|CLOUDSDK_|AZURE_|ACTIONS_ID_TOKEN_REQUEST_|COSIGN_|TRANSIT_SECRET_ENGINE_PATH$|SSL_CERT_FILE$)' || true)
    "${run[@]}" "$image" "${args[@]}" || code=$?
else
    "$IMAGEGATE_BIN" "${args[@]}" || code=$?
fi

if [[ -n "$INPUT_SARIF" && -f "$INPUT_SARIF" ]]; then
    echo "sarif=$INPUT_SARIF" >> "$GITHUB_OUTPUT"
fi
exit "$code"
