# What the end-to-end scripts of `mae` share (sourced): fail, and expect_refused.
fail() { echo "FAILED: $*"; exit 1; }
# expect_refused MESSAGE COMMAND...: the command exits non-zero and its stderr holds MESSAGE
expect_refused() {
  local message=$1; shift
  if "$@" > refused.out 2> refused.err; then fail "accepted: $*"; fi
  grep -qF -- "$message" refused.err || { cat refused.err; fail "no '$message' in the error of: $*"; }
  echo "refused as expected: $(head -c 300 refused.err)"
}
