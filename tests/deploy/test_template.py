"""template.yaml: valid for cfn-lint and SAM, and in step with the code it deploys.

No AWS account is needed: cfn-lint and `sam validate --lint` work offline with a region set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aigw.routes import ROUTES
from aigw.settings import LAMBDA_ROUTE, Settings
from tests.support.runtime_api import REPO, TEMPLATE, tool_env

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    tpl, errors = decode(str(TEMPLATE))
    assert not errors, errors
    assert tpl is not None
    return tpl


def resources(template: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def functions(template: Mapping[str, Any]) -> dict[str, Any]:
    return resources(template, "AWS::Serverless::Function")


def http_api_routes(template: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    routes: dict[tuple[str, str], str] = {}
    for name, fn in functions(template).items():
        for event in (fn["Properties"].get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                key = (props.get("Method", "ANY").upper(), props.get("Path", "$default"))
                assert key not in routes, f"{key} is wired twice"
                routes[key] = name
    return routes


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300)


def test_cfn_lint_passes():
    proc = run([str(BIN / "cfn-lint"), str(TEMPLATE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sam_validate_lint_passes():
    proc = run([sys.executable, "-m", "samcli", "validate", "--lint", "--template-file", str(TEMPLATE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


def test_http_api_routes_are_the_gateway_routes(template):
    expected = {(spec.method, spec.path) for spec in ROUTES.specs}
    routes = http_api_routes(template)
    assert routes.pop(("ANY", "$default")) == "NotFoundFunction"
    assert set(routes) == expected


def test_each_route_function_serves_the_endpoint_it_is_wired_to(template):
    """functions/<route>/app.py's fixed route is the table's route for every event of its function."""
    loop = asyncio.new_event_loop()  # Mangum looks for the thread's loop when constructed
    asyncio.set_event_loop(loop)
    try:
        for (method, path), name in http_api_routes(template).items():
            if path == "$default":
                continue  # NotFoundFunction routes by itself (tests/functions/test_handlers.py)
            props = functions(template)[name]["Properties"]
            assert props["Handler"] == "app.handler"
            app_py = REPO / props["CodeUri"] / "app.py"
            spec = importlib.util.spec_from_file_location(f"aigw_template_check_{name}", app_py)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            served = module.handler.app.routes
            assert served.handler() is ROUTES.resolve(method, path)[0].handler(), f"{name} does not serve {method} {path}"
            assert served.method == method and served.name == REPO.joinpath(props["CodeUri"]).name
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_every_http_api_event_uses_the_gateway_api(template):
    api = next(iter(resources(template, "AWS::Serverless::HttpApi")))
    for name, fn in functions(template).items():
        for event in (fn["Properties"].get("Events") or {}).values():
            assert event["Properties"].get("ApiId") == {"Ref": api}, name
            # HTTP APIs cannot wait longer than 30 s; a larger value fails at deploy time.
            assert event["Properties"].get("TimeoutInMillis", 30000) <= 30000


def test_globals(template):
    g = template["Globals"]["Function"]
    assert g["Runtime"] == "python3.12"
    assert g["Architectures"] in (["x86_64"], ["arm64"])
    assert g["Layers"] == [{"Ref": "SharedLayer"}]
    params = template["Parameters"]
    assert int(params[g["Timeout"]["Ref"]]["Default"]) > 30  # LLM calls; documented 30 s API limit
    assert int(params[g["MemorySize"]["Ref"]]["Default"]) >= 256


def test_environment_is_what_settings_reads(template):
    """Every Globals variable is one Settings.from_env reads, parameters' defaults parse, and the
    settings the core reads today are all deployable."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    params = template["Parameters"]

    class Recording(dict[str, str]):
        def __init__(self, *a: Any) -> None:
            super().__init__(*a)
            self.read: set[str] = set()

        def get(self, key: str, default: Any = None) -> Any:
            self.read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            self.read.add(key)
            return super().__getitem__(key)

    env = Recording({name: str(params[v["Ref"]]["Default"]) for name, v in variables.items()})
    settings = Settings.from_env(env, LAMBDA_ROUTE)
    assert set(variables) <= env.read, f"not read by Settings: {set(variables) - env.read}"
    for required in ("AUTH_MODE", "TRUSTED_CUSTOM_HOSTS", "GATEWAY_BASEPATH", "SERVICE_NAME",
                     "MAX_REQUEST_BODY_BYTES"):
        assert required in variables
    for name, value in variables.items():
        assert set(value) == {"Ref"} and value["Ref"] in params, name
    # On Lambda loopback is the Runtime API / the adapter: trust no private host by default.
    assert settings.trusted_custom_hosts == frozenset()
    assert settings.max_body_bytes <= 6 * 1024 * 1024


def test_shared_layer(template):
    (name, layer), = resources(template, "AWS::Serverless::LayerVersion").items()
    assert name == "SharedLayer"
    props = layer["Properties"]
    assert props["ContentUri"].rstrip("/") == "shared"
    assert props["CompatibleRuntimes"] == ["python3.12"]
    assert props["CompatibleArchitectures"] == template["Globals"]["Function"]["Architectures"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO / "shared" / "Makefile").read_text()
    assert re.search(rf"^build-{name}:", makefile, re.M)
    assert "--invalidation-mode unchecked-hash" in makefile


def requirement_set(lines: list[str]) -> set[tuple[str, str]]:
    out = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            out.add((canonicalize_name(req.name), str(req.specifier)))
    return out


def test_layer_requirements_match_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    layer = (REPO / "shared" / "requirements.txt").read_text().splitlines()
    assert requirement_set(layer) == requirement_set(pyproject["project"]["dependencies"])


def test_stream_requirements_are_the_local_server_only():
    names = {n for n, _ in requirement_set((REPO / "functions/stream/requirements.txt").read_text().splitlines())}
    # aigw.adapters.local runs uvicorn with loop="uvloop" and the httptools protocol.
    assert names == {"uvicorn", "uvloop", "httptools"}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    local = {canonicalize_name(Requirement(r).name) for r in pyproject["project"]["optional-dependencies"]["local"]}
    assert "uvicorn" in local


def test_stream_function(template):
    fn = functions(template)["StreamFunction"]
    props = fn["Properties"]
    assert props["Handler"] == "run.sh"
    assert props["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert fn["Metadata"]["BuildMethod"] == "makefile"
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["PORT"] == "8080"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/v1/health" and ROUTES.resolve("GET", "/v1/health")[0].name == "health"
    # The public adapter layer unless an ARN is given; x86_64 adapter for an x86_64 function.
    (layer,) = props["Layers"]
    condition, public, custom = layer["Fn::If"]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "LambdaAdapterLayerArn"}, ""]}
    arch = template["Globals"]["Function"]["Architectures"][0]
    name = {"x86_64": "LambdaAdapterLayerX86", "arm64": "LambdaAdapterLayerArm64"}[arch]
    arn = f"arn:aws:lambda:${{AWS::Region}}:753240598075:layer:{name}:${{LambdaAdapterLayerVersion}}"
    assert public == {"Fn::Sub": arn}
    assert custom == {"Ref": "LambdaAdapterLayerArn"}
    code = REPO / props["CodeUri"]
    run_sh = code / "run.sh"
    assert run_sh.stat().st_mode & 0o111, "run.sh must be executable (git mode 100755)"
    assert re.search(r"^build-StreamFunction:", (code / "Makefile").read_text(), re.M)
    script = run_sh.read_text()
    assert "-m aigw.adapters.local" in script and "HOST=127.0.0.1" in script


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """The template after SAM's transform (what CloudFormation deploys), offline."""
    import copy
    import json
    import os

    from samtranslator.translator.transform import transform

    class Policies:  # the managed-policy lookup would call IAM
        def load(self) -> dict[str, str]:
            return {"AWSLambdaBasicExecutionRole":
                    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}

    doc = json.loads(json.dumps(copy.deepcopy(template)))
    for res in doc["Resources"].values():  # as after `sam package`
        for key in ("CodeUri", "ContentUri"):
            if key in res.get("Properties", {}):
                res["Properties"][key] = "s3://bucket/key"
    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region or "us-east-1"  # the translator needs a partition
    try:
        return transform(doc, {}, Policies())
    finally:
        if region is None:
            del os.environ["AWS_DEFAULT_REGION"]


def test_public_stream_url_can_be_invoked(template, transformed):
    """A Function URL with AuthType NONE answers 403 unless its function grants both
    lambda:InvokeFunctionUrl and lambda:InvokeFunction (via the URL) to everyone. SAM adds them
    only for a literal NONE, so the template adds them for the parameter."""
    assert template["Conditions"]["PublicStreamUrl"] == {"Fn::Equals": [{"Ref": "StreamUrlAuthType"}, "NONE"]}
    perms = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"
             and r["Properties"]["FunctionName"] == {"Ref": "StreamFunction"}]
    by_action = {r["Properties"]["Action"]: r for r in perms}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(r.get("Condition") == "PublicStreamUrl" and r["Properties"]["Principal"] == "*" for r in perms)
    assert by_action["lambda:InvokeFunctionUrl"]["Properties"]["FunctionUrlAuthType"] == "NONE"
    assert by_action["lambda:InvokeFunction"]["Properties"]["InvokedViaFunctionUrl"] is True
    (url,) = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::Lambda::Url"]
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"


def test_http_api_may_invoke_every_route_function(template, transformed):
    granted = {r["Properties"]["FunctionName"]["Ref"] for r in transformed["Resources"].values()
               if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"}
    assert granted == set(http_api_routes(template).values())


def test_outputs(template):
    outputs = template["Outputs"]
    assert "execute-api" in outputs["HttpApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["StreamFunctionUrl"]["Value"] == {"Fn::GetAtt": ["StreamFunctionUrl", "FunctionUrl"]}


def test_architecture_is_the_same_everywhere(template):
    """Layer build, stream build and adapter layer must agree with the functions' architecture."""
    arch = template["Globals"]["Function"]["Architectures"][0]
    assert template["Resources"]["SharedLayer"]["Metadata"]["BuildArchitecture"] == arch
    for makefile in (REPO / "shared/Makefile", REPO / "functions/stream/Makefile"):
        assert re.search(rf"^LAMBDA_ARCH \?= {arch}$", makefile.read_text(), re.M), makefile
