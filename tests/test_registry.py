import sys

import pytest

from gan_colorize.registry import GENERATORS, ImportRefusedError, Registry, RegistryError


def make_registry():
    reg = Registry("widget")

    @reg.register("square")
    class Square:
        def __init__(self, side: int = 1):
            self.side = side

    return reg, Square


def test_build_by_name_with_arguments():
    reg, Square = make_registry()
    obj = reg.build({"type": "square", "side": 3})
    assert isinstance(obj, Square) and obj.side == 3
    assert reg.build("square").side == 1


def test_unknown_name_lists_registered_and_suggests():
    reg, _ = make_registry()
    with pytest.raises(RegistryError) as err:
        reg.build({"type": "sqare"})
    text = str(err.value)
    assert (
        "unknown widget 'sqare'" in text and "did you mean 'square'" in text and "registered: square" in text
    )


def test_unknown_argument_suggests_closest():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match=r"takes no argument 'sied' \(did you mean 'side'\?\)"):
        reg.build({"type": "square", "sied": 2})


def test_missing_type_key():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="has no 'type:'"):
        reg.build({"side": 2})


def test_module_class_outside_the_package(tmp_path, monkeypatch):
    (tmp_path / "my_widgets.py").write_text(
        "class Triangle:\n    def __init__(self, base=2):\n        self.base = base\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg, _ = make_registry()
    obj = reg.build({"type": "my_widgets:Triangle", "base": 5})
    assert type(obj).__name__ == "Triangle" and obj.base == 5
    sys.modules.pop("my_widgets", None)


def test_module_class_is_not_imported_when_imports_are_not_allowed(tmp_path, monkeypatch):
    (tmp_path / "flagging_widgets.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported.flag').touch()\nclass Circle:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg, _ = make_registry()
    with pytest.raises(ImportRefusedError, match="'flagging_widgets:Circle' is not registered"):
        reg.build({"type": "flagging_widgets:Circle"}, allow_import=False)
    assert "flagging_widgets" not in sys.modules and not (tmp_path / "imported.flag").exists()
    module = __import__("flagging_widgets")
    with pytest.raises(ImportRefusedError):  # imported but not registered: still refused
        reg.get("flagging_widgets:Circle", allow_import=False)
    reg.register("circle")(module.Circle)  # registered by its module, as a decorator would
    assert isinstance(reg.build({"type": "flagging_widgets:Circle"}, allow_import=False), module.Circle)
    sys.modules.pop("flagging_widgets", None)


def test_module_class_errors_are_clear():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="cannot import module 'no_such_module_xyz'"):
        reg.get("no_such_module_xyz:Thing")
    with pytest.raises(RegistryError, match="has no attribute 'Nope'"):
        reg.get("gan_colorize.registry:Nope")


def test_duplicate_registration_is_refused():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("square")
        class Other:
            pass


def test_package_registries_load_their_modules_lazily():
    assert {"unet", "zhang_eccv16", "zhang_regression", "unet_zhang"} <= set(GENERATORS.names())
