#!/bin/sh
# Step "assert": turns the gate step's exit code into the task's outcome.
#   0        passes (TEST_OUTPUT is SUCCESS or WARNING);
#   1        violations of rules that break the build: fails when STRICT is true, passes with
#            TEST_OUTPUT left at FAILURE when STRICT is false;
#   anything else (2 bad input, 3 registry or key service unreachable, no exit code at all)
#            fails whatever STRICT says, with TEST_OUTPUT set to ERROR: a gate that could not
#            judge never passes.
set -eu

case "$PARAM_STRICT" in
    true | false) ;;
    *) printf 'imagegate task: STRICT is %s; it must be true or false\n' "'$PARAM_STRICT'" >&2; exit 2 ;;
esac

code=none
if [ -s "$GATE_EXIT_CODE_PATH" ]; then
    read -r code < "$GATE_EXIT_CODE_PATH" || true
fi
result=none
if [ -s "$RESULT_TEST_OUTPUT" ]; then
    case "$(cat "$RESULT_TEST_OUTPUT")" in
        *'"result":"SUCCESS"'*) result=SUCCESS ;;
        *'"result":"WARNING"'*) result=WARNING ;;
        *'"result":"FAILURE"'*) result=FAILURE ;;
        *'"result":"ERROR"'*) result=ERROR ;;
        *) result=unreadable ;;
    esac
fi

error() {
    printf '{"result":"ERROR","timestamp":"%s","successes":0,"failures":0,"warnings":0,"note":"%s"}' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" > "$RESULT_TEST_OUTPUT"
    printf 'imagegate task: %s\n' "$1" >&2
    exit "$2"
}

case "$code:$result" in
    0:SUCCESS | 0:WARNING)
        printf 'imagegate task: passed (%s)\n' "$result"
        ;;
    1:FAILURE)
        if [ "$PARAM_STRICT" = true ]; then
            printf 'imagegate task: failed: a rule that breaks the build was violated (STRICT is true)\n' >&2
            exit 1
        fi
        printf 'imagegate task: violations reported, not enforced (STRICT is false); TEST_OUTPUT says FAILURE\n'
        ;;
    0:* | 1:*)
        error "imagegate exited $code but its TEST_OUTPUT result is $result" 3
        ;;
    none:*)
        error "the gate step left no exit code; it did not run to the end" 3
        ;;
    *)
        case "$code" in
            '' | *[!0-9]*) code=3 ;;
        esac
        error "imagegate could not finish (exit code $code); see the gate step's log" "$code"
        ;;
esac
