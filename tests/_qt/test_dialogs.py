from qtpy.QtWidgets import QMessageBox, QWidget

from napari_milseg._dialogs import confirm_replace


def test_confirm_replace_asks_only_about_existing_files_and_defaults_to_no(
    qtbot, tmp_path, monkeypatch
):
    parent = QWidget()
    qtbot.addWidget(parent)
    old, new = tmp_path / "old.pt", tmp_path / "new.json"
    asked = []

    def answer(choice):
        def question(*args):
            asked.append(args)
            return choice

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert confirm_replace(parent, [new]) is True  # nothing to replace: no question
    assert asked == []
    old.write_text("x")
    assert confirm_replace(parent, [old, new], "the existing model") is False
    _, title, text, _, default = asked[0]
    assert title == "Replace the existing model?"
    assert str(old) in text and str(new) not in text
    assert default == QMessageBox.StandardButton.No
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert confirm_replace(parent, [old]) is True
