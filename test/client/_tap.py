"""TAP-style bookkeeping shared by the Python client tests (the harness
skips files starting with an underscore)."""
import sys

failures = []
passed = 0


def check(name, cond, detail=""):
    """One TAP line for cond; detail is printed when it fails."""
    global passed
    if cond:
        passed += 1
        print("ok - %s" % name)
    else:
        failures.append(name)
        print("not ok - %s %s" % (name, detail))


def fail(name, detail=""):
    check(name, False, detail)


def finish(what):
    """The plan line and a verdict; exits 1 if anything failed."""
    print("1..%d" % (passed + len(failures)))
    if failures:
        print("FAILED: %s" % ", ".join(failures))
        sys.exit(1)
    print("all %d %s tests passed" % (passed, what))
