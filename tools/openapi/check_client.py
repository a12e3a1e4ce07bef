"""Judges one openapi-python-client run for tools/openapi/client.sh.

Usage: check_client.py DOCUMENT CLIENT_DIR STDOUT_FILE STDERR_FILE GENERATOR_STATUS

Lists every problem, one per line, and exits 1 if there is any:
  * anything the generator printed besides its "Generating <dir>" line: each warning or
    error block (a header such as "WARNING parsing GET /v1/... within tag." and its detail,
    with the status code the generator leaves out and the $ref it names), deduplicated;
  * a non-zero exit status of the generator;
  * an operation of the document without a generated endpoint module, or a module that
    matches no operation (so that a silently dropped or overwritten endpoint fails too), and
    two operations of one tag with one operationId (the second module overwrites the first);
  * a generated module that cannot be imported.
Exits 0, with a one-line summary, when there is none. An operationId shared across tags
is printed as a note: the generator copes, although OpenAPI requires unique operationIds.
"""

import importlib
import json
import pkgutil
import re
import sys
from collections import Counter
from pathlib import Path

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The first line of each block that the generator prints for a warning or an error
# (openapi-python-client 0.29: parser/errors.py and the headers set in parser/ and
# __init__.py). A paragraph that matches none of them is the detail of the block before it.
HEADERS = re.compile(
    r"^(WARNING parsing |Unable to |Problem creating a |Skipping Integration|Failed to parse |"
    r"Invalid (JSON|YAML) |Could not get |Enum values must |Unsupported enum type |"
    r"Conflicting property names|Found conflicting properties |invalid data in items |"
    r"Endpoint requires a body|\S+ failed$)"
)
BANNERS = re.compile(r"^(Warning\(s\) encountered while generating|Error\(s\) encountered while generating)")
TRAILER = re.compile(r"^If you believe this was a mistake")


def paragraphs(text):
    block = []
    for line in text.splitlines():
        if BANNERS.match(line) or TRAILER.match(line):
            continue
        if line.strip():
            block.append(line.rstrip())
        elif block:
            yield block
            block = []
    if block:
        yield block


# openapi-python-client 0.29.1 prints an object's repr where the status code belongs:
# "Cannot parse response for status code <...UntrustedString object at 0x7f…>".
OBJECT_REPR = re.compile(r"<openapi_python_client\.[\w.]+ object at 0x[0-9a-f]+>")
OPERATION = re.compile(r"^WARNING parsing (\w+) (\S+) within ")


def status_codes(document, header, data):
    """The status codes of the operation named in header whose response, or one of whose
    response schemas, is data (the part of the document the generator printed)."""
    match = OPERATION.match(header)
    if not match or data is None:
        return []
    operation = document.get("paths", {}).get(match.group(2), {}).get(match.group(1).lower(), {})
    codes = []
    for code, response in operation.get("responses", {}).items():
        schemas = [media.get("schema") for media in (response.get("content") or {}).values()]
        if response == data or data in schemas:
            codes.append(code)
    return codes


def generator_problems(document, stdout, stderr, status):
    problems = []
    for line in stdout.splitlines():
        if line.strip() and not line.startswith("Generating "):
            problems.append(f"generator printed: {line.strip()}")
    blocks = []
    for block in paragraphs(stderr):
        first = block[0].strip()
        if first.startswith(("{", "[")) and blocks:
            # The part of the document the problem is about (a pydantic JSON dump).
            try:
                blocks[-1].setdefault("data", json.loads("\n".join(block)))
            except ValueError:
                blocks[-1]["details"].append(" ".join(line.strip() for line in block))
            continue
        joined = " ".join(line.strip() for line in block)
        if HEADERS.match(first) or not blocks:
            blocks.append({"header": joined, "details": []})
        else:
            blocks[-1]["details"].append(joined)
    for block in blocks:
        line = block["header"]
        if block["details"]:
            line += " -- " + " ".join(block["details"])
        data = block.get("data")
        if OBJECT_REPR.search(line):
            codes = status_codes(document, block["header"], data)
            line = OBJECT_REPR.sub("/".join(codes) if codes else "?", line)
        if isinstance(data, dict) and "$ref" in data:
            line += f" [$ref {data['$ref']}]"
        problems.append(line)
    if status != 0:
        problems.append(f"the generator exited with status {status}")
    # Deduplicated, in the generator's order.
    return list(dict.fromkeys(problems))


def normalize(path):
    """/v1/wallets/{wallet_id}/x and /v1/wallets/{id}/x alike: names may be renamed."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def operation_problems(document, client):
    problems = []
    operations = Counter()
    paths = {}
    operation_ids = {}
    for path, item in document.get("paths", {}).items():
        if "$ref" in item:
            problems.append(f"path item {path} is a $ref, which this check does not resolve")
        for method in METHODS:
            if method in item:
                key = (method.upper(), normalize(path))
                operations[key] += 1
                paths.setdefault(key, []).append(path)
                operation_id = item[method].get("operationId")
                if operation_id is not None:
                    # The generator writes an operation to api/<first tag>/<operationId>.py.
                    tag = (item[method].get("tags") or ["default"])[0]
                    operation_ids.setdefault(operation_id, []).append((tag, f"{method.upper()} {path}"))
    notes = []
    for operation_id, users in operation_ids.items():
        for tag in sorted({tag for tag, _ in users}):
            same_tag = [name for other, name in users if other == tag]
            if len(same_tag) > 1:
                problems.append(
                    f"operationId {operation_id} is used by {', '.join(same_tag)}, all tagged {tag}: "
                    "one generated module overwrites the others"
                )
        if len({tag for tag, _ in users}) > 1:
            notes.append(
                f"note: operationId {operation_id} is used by {', '.join(f'{name} ({tag})' for tag, name in users)}; "
                "OpenAPI requires unique operationIds, this generator copes because the tags differ"
            )
    modules = Counter()
    names = {}
    api = client / "api"
    module_files = sorted(p for p in api.glob("*/*.py") if p.name != "__init__.py") if api.is_dir() else []
    for module in module_files:
        source = module.read_text(encoding="utf-8")
        method = re.search(r'"method": "(\w+)"', source)
        url = re.search(r'"url": f?"([^"]+)"', source)
        if not method or not url:
            problems.append(f"generated module {module.relative_to(client)} names no method and url")
            continue
        key = (method.group(1).upper(), normalize(url.group(1)))
        modules[key] += 1
        names.setdefault(key, []).append(str(module.relative_to(client)))
    total_operations = sum(operations.values())
    if total_operations != len(module_files):
        problems.append(
            f"the document has {total_operations} operations but the client has {len(module_files)} endpoint modules"
        )
    for key in sorted(operations):
        if modules[key] < operations[key]:
            problems.append(f"no endpoint module generated for {key[0]} {' or '.join(paths[key])}")
    for key in sorted(modules):
        if modules[key] > operations[key]:
            problems.append(f"endpoint module(s) {', '.join(names[key])} match no operation of the document")
    return problems, notes, total_operations, len(module_files)


def import_problems(client):
    problems = []
    sys.path.insert(0, str(client.parent))
    package = client.name
    try:
        root = importlib.import_module(package)
    except Exception as err:  # noqa: BLE001 - any failure is a broken client
        return [f"the generated package {package} does not import: {type(err).__name__}: {err}"], 0
    count = 1
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(info.name)
            count += 1
        except Exception as err:  # noqa: BLE001
            problems.append(f"generated module {info.name} does not import: {type(err).__name__}: {err}")
    return problems, count


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    document_file, client_dir, stdout_file, stderr_file, status = sys.argv[1:]
    client = Path(client_dir)
    try:
        document = json.loads(Path(document_file).read_text(encoding="utf-8"))
    except ValueError as err:
        print(f"the OpenAPI document {document_file} is not JSON: {err}", file=sys.stderr)
        return 1
    problems = generator_problems(
        document,
        Path(stdout_file).read_text(encoding="utf-8", errors="replace"),
        Path(stderr_file).read_text(encoding="utf-8", errors="replace"),
        int(status),
    )
    more, notes, operations, endpoint_modules = operation_problems(document, client)
    problems += more
    for note in notes:
        print(note, file=sys.stderr)
    imported = 0
    if client.is_dir():
        more, imported = import_problems(client)
        problems += more
    else:
        problems.append(f"the generator wrote no client at {client}")
    if problems:
        print(
            f"openapi-python-client could not fully handle the OpenAPI document: {len(problems)} problem(s)",
            file=sys.stderr,
        )
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    models = len([p for p in (client / "models").glob("*.py") if p.name != "__init__.py"])
    print(
        f"openapi-python-client: no warnings; {operations} operations, {endpoint_modules} endpoint modules, "
        f"{models} model modules; all {imported} modules import"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
