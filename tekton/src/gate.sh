#!/bin/sh
# Step "gate": every parameter arrives in the environment (PARAM_*), never inside this script.
# The exit code is imagegate's own (0 passed, 1 violations, 2 bad input, 3 could not finish);
# the step runs with onError: continue, and the "assert" step decides what it means.
set -eu
set -f  # POLICY, RULES and EXTRA_ARGS are split on blanks, never expanded as globs

fail() { printf 'imagegate task: %s\n' "$*" >&2; exit 2; }

# A path inside the named workspace when relative and the workspace is bound; else as given.
inside() {
    case "$3" in
        /*) printf '%s' "$3" ;;
        *) if [ "$1" = true ]; then printf '%s/%s' "$2" "$3"; else printf '%s' "$3"; fi ;;
    esac
}

set -- gate "$PARAM_IMAGE" --namespace "$PARAM_NAMESPACE" -o table

key=$PARAM_KEY
if [ "$WORKSPACE_KEY_BOUND" = true ]; then
    # A cosign key pair mounted from a Secret: cosign.key, and cosign.password when it has one.
    if [ -z "$key" ]; then
        key=cosign.key
    fi
    case "$key" in
        *://*) ;;
        *) key=$(inside true "$WORKSPACE_KEY_PATH" "$key") ;;
    esac
    if [ -z "${COSIGN_PASSWORD:-}" ] && [ -f "$WORKSPACE_KEY_PATH/cosign.password" ]; then
        COSIGN_PASSWORD=$(cat "$WORKSPACE_KEY_PATH/cosign.password")
        export COSIGN_PASSWORD
    fi
fi
if [ -n "$key" ]; then
    set -- "$@" --key "$key"
fi

case "$PARAM_DRY_RUN" in
    true) set -- "$@" --dry-run ;;
    false) ;;
    *) fail "DRY_RUN is '$PARAM_DRY_RUN'; it must be true or false" ;;
esac

if [ "$WORKSPACE_DOCKERCONFIG_BOUND" = true ]; then
    # A config.json, or the .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret.
    if [ -f "$WORKSPACE_DOCKERCONFIG_PATH/config.json" ]; then
        set -- "$@" --registry-config "$WORKSPACE_DOCKERCONFIG_PATH/config.json"
    elif [ -f "$WORKSPACE_DOCKERCONFIG_PATH/.dockerconfigjson" ]; then
        set -- "$@" --registry-config "$WORKSPACE_DOCKERCONFIG_PATH/.dockerconfigjson"
    else
        fail "the dockerconfig workspace holds neither config.json nor .dockerconfigjson"
    fi
fi

for path in $PARAM_POLICY; do
    set -- "$@" --policy "$(inside "$WORKSPACE_POLICIES_BOUND" "$WORKSPACE_POLICIES_PATH" "$path")"
done
for rules in $PARAM_RULES; do
    case "$rules" in
        builtin | none) set -- "$@" --rules "$rules" ;;
        *) set -- "$@" --rules "$(inside "$WORKSPACE_POLICIES_BOUND" "$WORKSPACE_POLICIES_PATH" "$rules")" ;;
    esac
done
if [ -n "$PARAM_VULNS" ]; then
    set -- "$@" --vulns "$(inside "$WORKSPACE_POLICIES_BOUND" "$WORKSPACE_POLICIES_PATH" "$PARAM_VULNS")"
fi
for arg in $PARAM_EXTRA_ARGS; do
    set -- "$@" "$arg"
done

# imagegate writes IMAGE_REF and TEST_OUTPUT into one folder; copy them to wherever Tekton
# wants each result.
out=$(mktemp -d)
code=0
imagegate "$@" --results-dir "$out" || code=$?
if [ -f "$out/IMAGE_REF" ]; then
    cat "$out/IMAGE_REF" > "$RESULT_IMAGE_REF"
fi
if [ -f "$out/TEST_OUTPUT" ]; then
    cat "$out/TEST_OUTPUT" > "$RESULT_TEST_OUTPUT"
fi
rm -rf "$out"
exit "$code"
