#!/usr/bin/env bash
# conformance-deps.sh — install what the conformance suite and the system
# benchmark drive as real peers: dcmtk, Orthanc with its DICOMweb plugin,
# Node/npm (dicomweb-client), python3 (corpus generators). Idempotent:
# installs only what is missing. Never starts the system Orthanc service.
set -euo pipefail

need=()
command -v storescu >/dev/null || need+=(dcmtk)
command -v Orthanc >/dev/null || need+=(orthanc)
[[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || need+=(orthanc-dicomweb)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
	echo "conformance-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the package's Orthanc service from starting.
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >&2
fi
