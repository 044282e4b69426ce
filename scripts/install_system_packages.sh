#!/usr/bin/env bash
# Debian packages the tests use as real components: dciodvfy (dicom3tools)
# validates every DICOM output; Orthanc (+ DICOMweb plugin) is the PACS of the
# round-trip tests; chromium renders the stress-test report headless. Needs root
# (CI runs as root).
set -euo pipefail
if command -v dciodvfy >/dev/null && command -v Orthanc >/dev/null && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
    && command -v chromium >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dicom3tools orthanc orthanc-dicomweb chromium fonts-dejavu-core >/dev/null
