'use strict';
// Drives the Medimint DICOMweb gateway with dicomweb-client, the library
// OHIF uses, unmodified (XMLHttpRequest comes from xhr2). Run by the Go
// test TestDicomwebClient, which starts the server and writes the
// manifest: node dicomweb.test.cjs manifest.json
//
// manifest: { url, patientID, study, instances: [{ file, series, sop,
// frames: [file of frame 1, ...], pixelData: file }] }
//
// Exits 0 when every check passes; prints what failed otherwise.

const fs = require('fs');
global.XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');

const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const failures = [];
function check(cond, what) {
  if (!cond) failures.push(what);
}

function bytesOf(file) {
  const b = fs.readFileSync(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function toArrayBuffer(u8) {
  return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
}

function equal(a, b) {
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function value(ds, tag) {
  const e = ds[tag];
  return e && e.Value ? e.Value[0] : undefined;
}

async function main() {
  const client = new api.DICOMwebClient({ url: manifest.url });
  const study = manifest.study;

  // STOW-RS.
  const datasets = manifest.instances.map((i) => toArrayBuffer(bytesOf(i.file)));
  await client.storeInstances({ datasets });

  // QIDO-RS.
  const studies = await client.searchForStudies({ queryParams: { PatientID: manifest.patientID } });
  check(studies.length === 1, `searchForStudies: ${studies.length} studies`);
  check(value(studies[0], '0020000D') === study, 'searchForStudies: wrong study');
  check(String(value(studies[0], '00201208')) === String(manifest.instances.length), 'NumberOfStudyRelatedInstances');
  const series = await client.searchForSeries({ studyInstanceUID: study });
  const wantSeries = new Set(manifest.instances.map((i) => i.series));
  check(series.length === wantSeries.size, `searchForSeries: ${series.length} series`);
  const instances = await client.searchForInstances({ studyInstanceUID: study });
  check(instances.length === manifest.instances.length, `searchForInstances: ${instances.length}`);

  // WADO-RS metadata.
  const meta = await client.retrieveStudyMetadata({ studyInstanceUID: study });
  check(meta.length === manifest.instances.length, `retrieveStudyMetadata: ${meta.length}`);

  for (const inst of manifest.instances) {
    const ids = { studyInstanceUID: study, seriesInstanceUID: inst.series, sopInstanceUID: inst.sop };
    const im = await client.retrieveInstanceMetadata(ids);
    check(im.length === 1 && value(im[0], '00080018') === inst.sop, `retrieveInstanceMetadata ${inst.sop}`);
    const seriesMeta = await client.retrieveSeriesMetadata({ studyInstanceUID: study, seriesInstanceUID: inst.series });
    check(seriesMeta.some((m) => value(m, '00080018') === inst.sop), `retrieveSeriesMetadata ${inst.series}`);

    // The instance, compared with the bytes stored.
    const obj = await client.retrieveInstance(ids);
    check(equal(obj, bytesOf(inst.file)), `retrieveInstance ${inst.sop}: bytes differ (${obj.byteLength} bytes)`);

    // Frames, one request each and all at once.
    const numbers = inst.frames.map((_, k) => k + 1);
    for (const k of numbers) {
      const parts = await client.retrieveInstanceFrames({ ...ids, frameNumbers: [k] });
      check(parts.length === 1 && equal(parts[0], bytesOf(inst.frames[k - 1])), `retrieveInstanceFrames ${inst.sop} frame ${k}`);
    }
    const all = await client.retrieveInstanceFrames({ ...ids, frameNumbers: numbers });
    check(all.length === numbers.length && numbers.every((k) => equal(all[k - 1], bytesOf(inst.frames[k - 1]))),
      `retrieveInstanceFrames ${inst.sop} frames ${numbers}`);

    // Bulk data of the pixel data, by the URI in the metadata.
    const pix = im[0]['7FE00010'];
    check(pix && pix.BulkDataURI, `no BulkDataURI for the pixel data of ${inst.sop}`);
    if (pix && pix.BulkDataURI) {
      const bulk = await client.retrieveBulkData({ BulkDataURI: pix.BulkDataURI });
      check(bulk.length === 1 && equal(bulk[0], bytesOf(inst.pixelData)), `retrieveBulkData ${inst.sop}`);
    }
  }

  // The whole study.
  const whole = await client.retrieveStudy({ studyInstanceUID: study });
  check(whole.length === manifest.instances.length, `retrieveStudy: ${whole.length} instances`);
  for (const inst of manifest.instances) {
    const want = bytesOf(inst.file);
    check(whole.some((o) => equal(o, want)), `retrieveStudy lacks ${inst.sop}`);
  }
}

main().then(
  () => {
    if (failures.length > 0) {
      console.error(`FAIL: ${failures.length} checks failed:\n  ${failures.join('\n  ')}`);
      process.exit(1);
    }
    console.log('ok: store, search, metadata, instance, frames, bulk data and study retrieval match the input');
  },
  (err) => {
    console.error('FAIL:', err && err.status ? `HTTP ${err.status} ${err.request && err.request.responseURL}` : err);
    if (err && err.response) console.error(String(Buffer.from(err.response)).slice(0, 500));
    process.exit(1);
  },
);
