'use strict';
// Runs the gateway's dicomweb-client harness (gateway/jstest/
// dicomweb.test.cjs, unchanged) against a gated server: every request
// carries X-API-Key (MEDIMINT_API_KEY), as a PACS or viewer proxy would
// send it. Usage: node dicomweb-client.cjs manifest.json
const path = require('path');

const harness = path.resolve(__dirname, '../gateway/jstest/dicomweb.test.cjs');
// Patch the very xhr2 module the harness will load.
const XHR = require(require.resolve('xhr2', { paths: [path.dirname(harness)] }));
const send = XHR.prototype.send;
XHR.prototype.send = function (body) {
  this.setRequestHeader('X-API-Key', process.env.MEDIMINT_API_KEY || '');
  return send.call(this, body);
};
require(harness);
