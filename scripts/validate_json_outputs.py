#!/usr/bin/env python3
"""Independent check for the constrained-decoding tests: reads JSON lines of
{"schema": <JSON Schema>, "outputs": ["<generated text>", ...]} and checks that every output
parses (strict JSON, no NaN/Infinity) and validates under its schema with the `jsonschema`
package (Draft 2020-12, formats checked). Prints one line per failure; exit status 1 if any.
Used by Tests/GrammarTests and Tests/EngineTests (scripts/test.sh installs jsonschema)."""
import json
import sys

import jsonschema
import rfc3339_validator  # noqa: F401  (makes jsonschema check the date-time and time formats)


def reject_constant(name):
    raise ValueError(f"non-standard constant {name}")


def main(path):
    failures = 0
    checked = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            schema = record["schema"]
            validator = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            for text in record["outputs"]:
                checked += 1
                try:
                    value = json.loads(text, parse_constant=reject_constant)
                except ValueError as error:
                    failures += 1
                    print(f"does not parse ({error}): {text!r}")
                    continue
                errors = list(validator.iter_errors(value))
                if errors:
                    failures += 1
                    print(f"invalid ({errors[0].message}) under {json.dumps(schema)}: {text!r}")
    print(f"checked {checked} outputs, {failures} failures", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
