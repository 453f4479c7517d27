"""The reward loader: the four discovery ways, factories, naming, weights and every error case."""

import importlib.metadata
import sys
import textwrap

import pytest

from asru.core.errors import AsruError
from rewards import list_rewards, load_reward, load_rewards, register_reward, registry, reward_factory

PLUGIN = '''
"""A test plugin."""
from rewards.text import tokens

def brevity(prompts, completions, completion_ids=None, **kwargs):
    """Shorter answers score higher: 1 / number of tokens."""
    return [1.0 / max(1, len(tokens(c))) for c in completions]

def loud(completions, **kwargs):
    """Counts exclamation marks (TRL-docs style signature without prompts)."""
    return [float(c.count("!")) for c in completions]

def no_kwargs(prompts, completions):
    return [0.0 for _ in completions]

def wrong_names(p, c, **kwargs):
    return [0.0 for _ in c]

def needs_column(prompts, completions, answer, **kwargs):
    return [0.0 for _ in completions]

def positional_only(prompts, completions, /, **kwargs):
    return [0.0 for _ in completions]

async def async_reward(prompts, completions, **kwargs):
    return [1.0 for _ in completions]

class Scaled:
    """Length times a factor (a class: a factory)."""
    def __init__(self, factor=1.0, tokenizer=None):
        self.factor, self.tokenizer = factor, tokenizer
    def __call__(self, prompts, completions, **kwargs):
        return [self.factor * len(tokens(c)) for c in completions]

@__import__("rewards").reward_factory
def make_constant(value=0.25, **context):
    """A factory function returning a constant reward."""
    def constant(prompts, completions, **kwargs):
        return [value for _ in completions]
    constant.context_keys = sorted(context)
    return constant

NOT_CALLABLE = 42
'''


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(PLUGIN)
    return path


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    pkg = tmp_path / "modroot" / "acme_rewards"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scoring.py").write_text(PLUGIN)
    (pkg / "broken.py").write_text("import definitely_not_installed_pkg_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path / "modroot"))
    yield "acme_rewards"
    for name in [m for m in sys.modules if m.startswith("acme_rewards")]:
        del sys.modules[name]


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real installed distribution: a module plus a dist-info with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "epplug_mod.py").write_text(PLUGIN)
    dist = site / "epplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [asru.rewards]
            brevity_ep = epplug_mod:brevity
            scaled_ep = epplug_mod:Scaled
            broken_ep = epplug_mod:does_not_exist
            forget = epplug_mod:brevity
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("epplug_mod", None)


def _trl_call(fn, completions):
    return fn(prompts=["q"] * len(completions), completions=completions, completion_ids=None, trainer_state=None)


# -- 1. built-in names -----------------------------------------------------------------------
def test_builtin_names_and_list():
    names = list_rewards()
    assert {"forget", "retain", "fluency", "reasoning"} <= set(names)
    assert names["forget"].startswith("Forget rows: 0 if the ground truth leaks")
    for name in ("forget", "retain", "fluency", "reasoning"):
        fn = load_reward(name)
        assert fn.__name__ == name
        assert callable(fn)


# -- 2. module:function ----------------------------------------------------------------------
def test_module_function(plugin_module):
    fn = load_reward(f"{plugin_module}.scoring:brevity")
    assert fn.__name__ == "brevity"
    assert _trl_call(fn, ["a b", "a b c d"]) == [0.5, 0.25]
    loud = load_reward(f"{plugin_module}.scoring:loud")
    assert _trl_call(loud, ["hi!!", "no"]) == [2.0, 0.0]


def test_module_errors(plugin_module):
    with pytest.raises(AsruError, match="no module named 'acme_nope'"):
        load_reward("acme_nope.scoring:brevity")
    with pytest.raises(AsruError, match="importing acme_rewards.broken failed"):
        load_reward(f"{plugin_module}.broken:brevity")
    with pytest.raises(AsruError, match=r"module acme_rewards.scoring has no function 'missing'.*brevity"):
        load_reward(f"{plugin_module}.scoring:missing")


# -- 3. path/to/file.py:function -------------------------------------------------------------
def test_file_function(plugin_file):
    fn = load_reward(f"{plugin_file}:brevity")
    assert fn.__name__ == "brevity"
    assert _trl_call(fn, ["one", "one two three four five"]) == [1.0, 0.2]
    # only the named file is executed, under a private module name, once
    mods = [m for m in sys.modules if m.startswith("asru_reward_plugin_my_rewards_")]
    assert len(mods) == 1 and "my_rewards" not in sys.modules
    assert load_reward(f"{plugin_file}:loud").__module__ == mods[0]


def test_file_relative_path(plugin_file, monkeypatch):
    monkeypatch.chdir(plugin_file.parent)
    fn = load_reward("my_rewards.py:brevity")
    assert _trl_call(fn, ["a b c d"]) == [0.25]


def test_file_errors(tmp_path, plugin_file):
    with pytest.raises(AsruError, match="not found"):
        load_reward(f"{tmp_path}/nope.py:brevity")
    with pytest.raises(AsruError, match="not found"):
        load_reward(f"{tmp_path}:brevity")  # a directory is not a file
    txt = tmp_path / "rewards.txt"
    txt.write_text("x = 1")
    with pytest.raises(AsruError, match="not a .py file"):
        load_reward(f"{txt}:x")
    with pytest.raises(AsruError, match=r"has no function 'missing' \(callables there: Scaled, async_reward, brevity"):
        load_reward(f"{plugin_file}:missing")
    with pytest.raises(AsruError, match="name the function too"):
        load_reward(str(plugin_file))
    bad = tmp_path / "bad_syntax.py"
    bad.write_text("def f(:\n")
    with pytest.raises(AsruError, match="error while executing .*SyntaxError"):
        load_reward(f"{bad}:f")
    with pytest.raises(AsruError, match="bad reward spec"):
        load_reward(f"{plugin_file}:")
    with pytest.raises(AsruError, match="bad reward spec"):
        load_reward(f"{plugin_file}:not-an-identifier")


# -- 4. entry points -------------------------------------------------------------------------
def test_entry_point(installed_plugin):
    names = {ep.name for ep in importlib.metadata.entry_points(group="asru.rewards")}
    assert {"brevity_ep", "scaled_ep"} <= names  # the dist-info is really discovered
    fn = load_reward("brevity_ep")
    assert fn.__name__ == "brevity_ep"
    assert _trl_call(fn, ["a b"]) == [0.5]
    scaled = load_reward("scaled_ep", options={"factor": 2.0})
    assert scaled.__name__ == "scaled_ep"
    assert _trl_call(scaled, ["a b c"]) == [6.0]
    listed = list_rewards()
    assert listed["brevity_ep"] == "Shorter answers score higher: 1 / number of tokens."
    assert listed["scaled_ep"] == "Length times a factor (a class: a factory)."
    assert listed["broken_ep"].startswith("(cannot load epplug_mod:does_not_exist")
    # a built-in wins over an entry point with the same name
    assert listed["forget"].startswith("Forget rows")
    assert load_reward("forget")(prompts=["q"], completions=["Paris"], role=["forget"], answer=["Paris"]) == [0.0]


def test_entry_point_broken(installed_plugin):
    with pytest.raises(AsruError, match="entry point epplug_mod:does_not_exist failed to load"):
        load_reward("broken_ep")


def test_entry_point_monkeypatched(monkeypatch):
    """The loader asks importlib.metadata for the group 'asru.rewards' (seen by a patched lookup)."""
    seen = []

    def fake_entry_points(group):
        seen.append(group)
        return [importlib.metadata.EntryPoint("wordcount", "rewards.text:tokens", group)]

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", fake_entry_points)
    with pytest.raises(AsruError, match="reward 'wordcount' has signature"):
        load_reward("wordcount")  # found, but tokens(s) is not a reward
    assert seen == ["asru.rewards"]


# -- unknown names, signature checks ---------------------------------------------------------
def test_unknown_name_lists_known():
    with pytest.raises(AsruError, match=r"unknown reward 'forgt' \(known: .*fluency, forget, reasoning, retain"):
        load_reward("forgt")
    with pytest.raises(AsruError, match="non-empty string"):
        load_reward("  ")


@pytest.mark.parametrize(
    "func, message",
    [
        ("no_kwargs", r"must accept prompts, completions and \*\*kwargs"),
        ("wrong_names", r"TRL calls it as f\(prompts=..., completions=..."),
        ("needs_column", r"missing a required argument: 'answer'"),
        ("positional_only", r"TRL calls it as"),
        ("NOT_CALLABLE", r"reward '.*:NOT_CALLABLE' is a int, not a callable"),
    ],
)
def test_wrong_signatures(plugin_file, func, message):
    with pytest.raises(AsruError, match=message):
        load_reward(f"{plugin_file}:{func}")


def test_async_reward_keeps_coroutine_and_name(plugin_file):
    import asyncio
    import inspect

    fn = load_reward(f"{plugin_file}:async_reward", name="renamed")
    assert fn.__name__ == "renamed" and inspect.iscoroutinefunction(fn)
    assert asyncio.run(fn(prompts=["q"], completions=["a"])) == [1.0]


# -- factories -------------------------------------------------------------------------------
def test_factory_class_options_and_context(plugin_file):
    tok = object()
    fn = load_reward(f"{plugin_file}:Scaled", options={"factor": 0.5}, context={"tokenizer": tok, "ref_model": "m"})
    assert fn.tokenizer is tok  # accepted context is passed, unaccepted (ref_model) dropped
    assert fn.__name__ == "Scaled"
    assert _trl_call(fn, ["a b c d"]) == [2.0]
    with pytest.raises(AsruError, match=r"unknown option\(s\) factr \(accepted: factor, tokenizer\)"):
        load_reward(f"{plugin_file}:Scaled", options={"factr": 2})


def test_factory_function_gets_all_context_with_var_kwargs(plugin_file):
    fn = load_reward(f"{plugin_file}:make_constant", options={"value": 0.75}, context={"ref_model": 1, "tokenizer": 2})
    assert fn.context_keys == ["ref_model", "tokenizer"]
    assert fn.__name__ == "make_constant"
    assert _trl_call(fn, ["a", "b"]) == [0.75, 0.75]


def test_plain_reward_rejects_options(plugin_file):
    with pytest.raises(AsruError, match="takes no options"):
        load_reward(f"{plugin_file}:brevity", options={"x": 1})


def test_factory_returning_bad_reward(tmp_path):
    path = tmp_path / "badfactory.py"
    path.write_text("class Bad:\n    def __init__(self):\n        pass\n")
    with pytest.raises(AsruError, match="reward '.*:Bad' is a Bad, not a callable"):
        load_reward(f"{path}:Bad")  # the instance it builds is not callable
    path2 = tmp_path / "badfactory2.py"
    path2.write_text("class Bad:\n    def __init__(self, needed):\n        pass\n")
    with pytest.raises(AsruError, match=r"cannot build it with \[\]"):
        load_reward(f"{path2}:Bad")
    path3 = tmp_path / "badfactory3.py"
    path3.write_text("class Bad:\n    def __call__(self, prompts, completions):\n        return []\n")
    with pytest.raises(AsruError, match=r"must accept prompts, completions and \*\*kwargs"):
        load_reward(f"{path3}:Bad")


# -- registration ----------------------------------------------------------------------------
def test_register_reward_rejects_duplicates(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._builtins()))

    @register_reward("tmp_reward")
    def tmp_reward(prompts, completions, **kwargs):
        """Temporary."""
        return [0.0] * len(completions)

    assert load_reward("tmp_reward") is tmp_reward
    assert list_rewards()["tmp_reward"] == "Temporary."
    with pytest.raises(ValueError, match="already registered"):
        register_reward("forget")(tmp_reward)
    register_reward("tmp_reward")(tmp_reward)  # re-registering the same definition is fine


def test_reward_factory_marker():
    def make():
        return lambda prompts, completions, **kw: []

    assert registry.is_factory(reward_factory(make))
    assert registry.is_factory(registry.__class__) and not registry.is_factory(len)


# -- config mapping --------------------------------------------------------------------------
def test_load_rewards_weights_options_and_unique_names(plugin_file):
    funcs, weights = load_rewards(
        {
            "forget": 1.0,
            "retain": 1,
            "fluency": {"weight": 0.5, "n": 2},
            f"{plugin_file}:brevity": 0.25,
            f"{plugin_file}:make_constant": {"value": 0.1},
        },
        context={"ref_model": None},
    )
    assert [f.__name__ for f in funcs] == ["forget", "retain", "fluency", "brevity", "make_constant"]
    assert weights == [1.0, 1.0, 0.5, 0.25, 1.0]
    assert funcs[2].n == 2


def test_load_rewards_duplicate_function_names(tmp_path, plugin_file):
    other = tmp_path / "other.py"
    other.write_text(PLUGIN)
    funcs, _ = load_rewards({f"{plugin_file}:brevity": 1.0, f"{other}:brevity": 1.0})
    assert [f.__name__ for f in funcs] == ["brevity", "brevity_2"]
    assert _trl_call(funcs[1], ["a b"]) == [0.5]


@pytest.mark.parametrize("bad", ["high", None, True, float("nan"), float("inf")])
def test_load_rewards_bad_weight(bad):
    with pytest.raises(AsruError, match="weight of 'forget' must be a finite number"):
        load_rewards({"forget": bad})


def test_load_rewards_needs_mapping():
    with pytest.raises(AsruError, match="non-empty mapping"):
        load_rewards({})
    with pytest.raises(AsruError, match="non-empty mapping"):
        load_rewards(["forget"])


def test_trl_sees_names_and_async(plugin_file):
    """TRL logs rewards/<name>/mean using get_callable_name and awaits what is_async_callable flags."""
    from trl.trainer.utils import get_callable_name, is_async_callable

    funcs, _ = load_rewards({"forget": 1.0, "fluency": 0.5, f"{plugin_file}:async_reward": 0.1, f"{plugin_file}:Scaled": 1})
    assert [get_callable_name(f) for f in funcs] == ["forget", "fluency", "async_reward", "Scaled"]
    assert [is_async_callable(f) for f in funcs] == [False, False, True, False]


def test_resolve_reward_without_building(plugin_file):
    from rewards import resolve_reward
    from rewards.fluency import Fluency

    assert resolve_reward("fluency") == ("fluency", Fluency)
    name, obj = resolve_reward(f"{plugin_file}:Scaled")
    assert name == "Scaled" and registry.is_factory(obj)
    with pytest.raises(AsruError, match="unknown reward"):
        resolve_reward("nope")
