"""The model manager: the installed models with their cards, importing published
checkpoints (GeoCLIP, SatCLIP), and the device the algorithms run on."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from qgis.PyQt.QtCore import Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .. import settings, tasks
from ..algorithms.import_checkpoint import IMPORTERS, import_checkpoint
from ..icons import icon

LOOKING_FOR_DEVICES = "Looking for a GPU..."


def device_summary() -> str:
    """What torch finds on this machine, for the device choice."""
    from srl_core.device import available_devices

    found = available_devices()
    gpu = [d for d in found if d != "cpu"]
    if not gpu:
        return "Found: CPU only (no CUDA or MPS device visible to torch)."
    return "Found: " + ", ".join(d.upper() for d in found) + "."


class ModelManagerDialog(QDialog):
    """Lists bundles (bundled and user folder), shows a card, imports checkpoints, picks the device."""

    modelsChanged = pyqtSignal()  # noqa: N815 - Qt naming; emitted after an import

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("SRL model manager")
        self.setWindowIcon(icon("models"))
        self.resize(820, 520)
        self.task: Optional[tasks.SrlTask] = None

        self.models = QListWidget()
        self.models.setObjectName("srl_model_list")
        self.card = QTextBrowser()
        self.card.setObjectName("srl_model_card")
        self.card.setOpenExternalLinks(True)
        self.models.currentItemChanged.connect(self._show_card)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.models)
        split.addWidget(self.card)
        split.setSizes([260, 560])

        self.device = QComboBox()
        self.device.setObjectName("srl_device")
        self.device.addItems(list(settings.DEVICE_CHOICES))
        self.device.setCurrentText(settings.device())
        self.device.currentTextChanged.connect(settings.set_device)
        # torch, which finds the devices, takes seconds to import: not on QGIS's main thread (a frozen
        # window each time the dialog was first opened); it opens no dataset, so GDAL is left alone
        self.found = QLabel(LOOKING_FOR_DEVICES)
        self.device_task = tasks.start(tasks.SrlTask("SRL: look for a GPU", lambda progress: device_summary(),
                                                     self._show_devices, owner=self, uses_gdal=False))
        device_row = QHBoxLayout()
        device_row.addWidget(QLabel("Run models on:"))
        device_row.addWidget(self.device)
        device_row.addWidget(self.found, 1)
        self.threads = QSpinBox()
        self.threads.setObjectName("srl_threads")
        self.threads.setRange(0, settings.MAX_THREADS)
        self.threads.setSpecialValueText("automatic")  # shown for 0
        self.threads.setToolTip("CPU threads for models and analyses (with a GPU: for reading rasters and "
                                "writing tile embeddings); automatic leaves cores to QGIS.")
        self.threads.setValue(settings.threads())
        self.threads.valueChanged.connect(settings.set_threads)
        device_row.addWidget(QLabel("CPU threads:"))
        device_row.addWidget(self.threads)

        buttons = QHBoxLayout()
        self.import_buttons = {}
        for kind in IMPORTERS:
            button = QPushButton(f"Import {kind} checkpoint…")
            button.clicked.connect(lambda _=False, k=kind: self.ask_import(k))
            buttons.addWidget(button)
            self.import_buttons[kind] = button
        folder = QPushButton("Open model folder")
        folder.clicked.connect(self.open_user_folder)
        buttons.addWidget(folder)
        buttons.addStretch(1)
        self.status = QLabel("")
        self.status.setWordWrap(True)  # a failed import naming a long path widened the dialog past the screen
        self.status.setObjectName("srl_status")
        self.skipped = QLabel("")  # model folders left out, and why (a broken card)
        self.skipped.setObjectName("srl_skipped")
        self.skipped.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(device_row)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.skipped)
        layout.addWidget(close)

    def refresh(self, select: Optional[str] = None) -> None:
        """Re-read the model folders and show the first (or ``select``) model's card."""
        from srl_core.bundle import BUNDLED_MODELS_DIR, scan_bundles

        self.models.clear()
        self._cards = {}
        bundles, skipped = scan_bundles()
        # a folder with a broken card is not a model, but the analyst must see why it is missing
        self.skipped.setText("\n".join(f"Skipped {folder}: {problem}" for folder, problem in skipped))
        bundled_ids = {card.id for card, path in bundles if Path(path).parent == BUNDLED_MODELS_DIR}
        for card, path in bundles:
            origin = "bundled" if Path(path).parent == BUNDLED_MODELS_DIR else (
                "yours, not used: a bundled model has this id" if card.id in bundled_ids else "yours")
            item = QListWidgetItem(
                icon("embed" if card.kind == "tile" else "location"), f"{card.id}  ({card.kind}, {origin})"
            )
            item.setData(Qt.UserRole, card.id)
            item.setData(Qt.UserRole + 1, str(path))
            self.models.addItem(item)
            # by folder: a copy of a bundled model under its id showed its card for the bundled one
            self._cards[str(path)] = (card, path)
            if card.id == select:
                self.models.setCurrentItem(item)
        if self.models.currentItem() is None and self.models.count():
            self.models.setCurrentRow(0)
        if not self.models.count():
            self.card.setHtml(
                "<p>No models installed yet. Train one (Processing ▸ Spatial representation "
                "learning ▸ Models) or import a published checkpoint below.</p>"
            )

    def model_ids(self) -> list[str]:
        return [self.models.item(i).data(Qt.UserRole) for i in range(self.models.count())]

    def _show_card(self, item: Optional[QListWidgetItem], _previous=None) -> None:
        if item is None:
            return
        from ..algorithms.list_models import card_html

        card, path = self._cards[item.data(Qt.UserRole + 1)]
        self.card.setHtml(card_html(card, path))

    def ask_import(self, kind: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, f"{kind} checkpoint", "", "Checkpoints (*.pth *.pt *.ckpt *.safetensors);;All files (*)"
        )
        if path:
            self.start_import(kind, path)

    def confirm_overwrite(self, question: str) -> bool:
        """Ask before an installed model is replaced (tests replace this with an answer)."""
        answer = QMessageBox.question(self, "Replace the installed model?", question,
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def start_import(
        self, kind: str, path: str, on_done: Optional[Callable[[Optional[str]], None]] = None,
        overwrite: bool = False,
    ) -> None:
        """Import in the background; the list refreshes and selects the new model when done.

        When a model of the same id is installed, the analyst is asked whether to replace it;
        it is never replaced silently."""
        from srl_core.errors import BundleExistsError

        self.status.setText(f"Importing {kind} checkpoint {Path(path).name}…")
        for button in self.import_buttons.values():
            button.setEnabled(False)

        def done(folder, error):
            failure = task.failure
            self.task = None
            for button in self.import_buttons.values():
                button.setEnabled(True)
            if isinstance(failure, BundleExistsError) and self.confirm_overwrite(
                f"{error}\n\nReplace it with the model imported from {Path(path).name}?"
            ):
                self.start_import(kind, path, on_done, overwrite=True)
                return
            if error:
                self.status.setText(f"Import failed: {error}")
            else:
                self.status.setText(f"Imported into {folder}")
                self.refresh(select=Path(folder).name)
                self.modelsChanged.emit()
            if on_done is not None:
                on_done(error)

        task = tasks.SrlTask(
            f"Import {kind} checkpoint",
            lambda progress: import_checkpoint(kind, path, progress=progress, overwrite=overwrite),
            done,
            owner=self,
        )
        self.task = tasks.start(task)

    def _show_devices(self, summary: Optional[str], error: Optional[str]) -> None:
        self.found.setText(summary or f"Could not look for a GPU: {error}")

    def open_user_folder(self) -> None:
        from srl_core.bundle import user_models_dir

        folder = user_models_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where the folder should be, no permission
            self.status.setText(f"Cannot open the models folder {folder}: {exc.strerror or exc}.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
