"""Report impressions in the style of the paper's prompts.

RadEdit's diffusion model was conditioned on the *impression* of MIMIC-CXR
reports; the paper's editing prompts are such impressions (Sec. 5 and
Appendix 0.G): "No acute cardiopulmonary process", "Moderate pulmonary edema.
The heart size is normal", "Left pectoral pacemaker in place. The position of
the leads is as expected. Otherwise unremarkable chest radiographic
examination", "New left upper lobe consolidation", "No pneumothorax".  The
phantom world writes one impression per case from its findings and devices,
deterministically (the same case always gets the same text), so that these
prompts are in the training distribution of a model trained on the world:

* findings first, in a fixed order: "{Small|Moderate|Large} {right|left}
  pneumothorax.", "{Small|Moderate|Large} {right|left} pleural effusion." or
  "... bilateral pleural effusions.", "New {right|left} {upper|lower} lobe
  consolidation.", "{Mild|Moderate|Severe} pulmonary edema. The heart size is
  normal.";
* then devices: "{Right|Left} chest drain in place." (followed by "No
  pneumothorax." when there is none), "{Left|Right} pectoral pacemaker in
  place. The position of the leads is as expected.", "ECG leads overlie the
  chest.";
* no finding: "No acute cardiopulmonary process." without devices, and
  "Otherwise unremarkable chest radiographic examination." after them;
* with ``negatives`` (a world's ``report_negatives``), every report without a
  pneumothorax states "No pneumothorax." (the paper's removal prompt, which
  otherwise only follows a drain): after the drain's sentence if there is a
  drain, else at the end.

Each sentence ends with a period; a training workflow may shuffle the
sentences (as the paper did) or drop final periods.
"""

from __future__ import annotations

from .devices import DevicesParameters
from .findings import FindingsParameters

NORMAL = "No acute cardiopulmonary process."
OTHERWISE_NORMAL = "Otherwise unremarkable chest radiographic examination."
NO_PNEUMOTHORAX = "No pneumothorax."


def finding_sentences(findings: FindingsParameters) -> list[str]:
    out = []
    if (f := findings.pneumothorax) is not None:
        out.append(f"{f.size.capitalize()} {f.side} pneumothorax.")
    if (f := findings.effusion) is not None:
        if f.side == "bilateral":
            out.append(f"{f.size.capitalize()} bilateral pleural effusions.")
        else:
            out.append(f"{f.size.capitalize()} {f.side} pleural effusion.")
    if (f := findings.consolidation) is not None:
        out.append(f"New {f.side} {f.lobe} lobe consolidation.")
    if (f := findings.edema) is not None:
        out.append(f"{f.severity.capitalize()} pulmonary edema. The heart size is normal.")
    return out


def device_sentences(devices: DevicesParameters, findings: FindingsParameters) -> list[str]:
    out = []
    if (d := devices.drain) is not None:
        out.append(f"{d.side.capitalize()} chest drain in place.")
        if findings.pneumothorax is None:
            out.append(NO_PNEUMOTHORAX)
    if (d := devices.pacemaker) is not None:
        out.append(f"{d.side.capitalize()} pectoral pacemaker in place. The position of the leads is as expected.")
    if devices.ecg is not None:
        out.append("ECG leads overlie the chest.")
    return out


def impression(findings: FindingsParameters, devices: DevicesParameters, negatives: bool = False) -> str:
    """The report impression of a case (sentences joined by single spaces).

    ``negatives``: every report without a pneumothorax states "No pneumothorax." (at the end
    unless a drain's sentence already has it after it).
    """
    found = finding_sentences(findings)
    placed = device_sentences(devices, findings)
    if not found:
        sentences = placed + [OTHERWISE_NORMAL] if placed else [NORMAL]
    else:
        sentences = found + placed
    if negatives and findings.pneumothorax is None and NO_PNEUMOTHORAX not in sentences:
        sentences.append(NO_PNEUMOTHORAX)
    return " ".join(sentences)


__all__ = ["NORMAL", "NO_PNEUMOTHORAX", "OTHERWISE_NORMAL", "device_sentences", "finding_sentences", "impression"]
