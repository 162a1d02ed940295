"""Screenshots of the "Recover accuracy" dialog: live curves mid-run, then the result.

    QT_QPA_PLATFORM=offscreen python docs/screenshots/recover_screenshots.py DIGITS_DIR

DIGITS_DIR holds train/ and heldout/ class folders (engine.data.digits.write_image_folders).
Writes recover_live.png (during training) and recover_result.png (three-way result) here,
with QWidget.grab (no X server needed).
"""

import copy
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.dialogs.recover import RecoverDialog  # noqa: E402
from app.document import Document  # noqa: E402
from app.engine_api import load_and_trace  # noqa: E402
from engine.plan import PruningPlan, apply_plan  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.dirname(os.path.abspath(__file__))
digits = sys.argv[1]
qapp = QApplication([sys.argv[0]])
original: Document = load_and_trace("arborist:demo")
model = copy.deepcopy(original.model)
apply_plan(model, original.example_inputs, PruningPlan(pruning_ratio=0.6))
pruned = copy.copy(original)
pruned.model, pruned.pruned, pruned.title = model, True, original.title + " (pruned)"
dialog = RecoverDialog(original, pruned, data=os.path.join(digits, "train"),
                       eval_data=os.path.join(digits, "heldout"))
dialog.budget_kind.setCurrentIndex(1)
dialog.budget_value.setValue(300)
dialog.show()
taken = []


def live_shot():
    if len([p for p in dialog.points if p.metric is not None]) >= 6 and not taken:
        dialog.grab().save(os.path.join(OUT, "recover_live.png"))
        taken.append(1)
        print("shot recover_live.png", flush=True)


timer = QTimer()
timer.timeout.connect(live_shot)
timer.start(20)


def done(_outcome):
    QApplication.processEvents()
    dialog.grab().save(os.path.join(OUT, "recover_result.png"))
    print("shot recover_result.png", flush=True)
    QTimer.singleShot(100, qapp.quit)


dialog.recovered.connect(done)
dialog.start()
qapp.exec()
