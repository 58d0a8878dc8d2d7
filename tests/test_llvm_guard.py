import sys

from napari_milseg import _llvm_guard


def test_llvm_loaded_reads_the_memory_map(tmp_path):
    with_llvm = tmp_path / "maps1"
    with_llvm.write_text("7f00-7f10 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    without = tmp_path / "maps2"
    without.write_text("7f00-7f10 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    assert _llvm_guard.llvm_loaded(str(with_llvm))
    assert not _llvm_guard.llvm_loaded(str(without))
    assert not _llvm_guard.llvm_loaded(str(tmp_path / "missing"))


def test_triton_is_blocked_only_beside_llvm(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr(_llvm_guard, "llvm_loaded", lambda: False)
    assert not _llvm_guard.keep_triton_away_from_mesa_llvm()
    assert "triton" not in sys.modules

    monkeypatch.setattr(_llvm_guard, "llvm_loaded", lambda: True)
    assert _llvm_guard.keep_triton_away_from_mesa_llvm()
    assert sys.modules["triton"] is None  # import triton now fails cleanly
    assert not _llvm_guard.keep_triton_away_from_mesa_llvm()  # already decided


def test_an_imported_triton_is_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    marker = object()
    monkeypatch.setitem(sys.modules, "triton", marker)
    monkeypatch.setattr(_llvm_guard, "llvm_loaded", lambda: True)
    assert not _llvm_guard.keep_triton_away_from_mesa_llvm()
    assert sys.modules["triton"] is marker
