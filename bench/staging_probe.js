// Benchmark 4's probe: the cheapest blob client we could write, to measure what Azurite itself allows.
//
// Uploads every file of a directory to a container (Put Blob), or downloads them back (Get Blob), with a fixed
// number of requests in flight on keep-alive connections. It authenticates with a container SAS made by the
// Python SDK, so nothing is signed per request; uploads send bodies read into memory before the clock starts;
// downloads count the bytes and throw them away. Node.js standard library only.
//
// Usage: STAGING_PROBE_SAS=<SAS query> node staging_probe.js <container URL> <up|down> <source directory> <in flight>
// (the SAS comes from the environment so that it never shows in a process listing)
// Prints one JSON line: {"wall": seconds, "cpu": seconds of this process, "bytes": n, "requests": n}.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const API_VERSION = '2025-11-05';

function main() {
  const [containerUrl, mode, sourceDir, inFlightArg] = process.argv.slice(2);
  const sas = process.env.STAGING_PROBE_SAS;
  const inFlight = Number(inFlightArg);
  if (!containerUrl || !sas || !['up', 'down'].includes(mode) || !sourceDir || !(inFlight > 0)) {
    fail('usage: STAGING_PROBE_SAS=<SAS> node staging_probe.js <container URL> <up|down> <source dir> <in flight>');
  }
  const names = fs.readdirSync(sourceDir).sort();
  if (names.length === 0) fail(`no files in ${sourceDir}`);
  const bodies = mode === 'up' ? names.map((name) => fs.readFileSync(path.join(sourceDir, name))) : [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let next = 0;
  let finished = 0;
  let bytes = 0;

  function send() {
    if (next >= names.length) return;
    const index = next++;
    const url = `${containerUrl}/${encodeURIComponent(names[index])}?${sas}`;
    const headers = { 'x-ms-version': API_VERSION };
    if (mode === 'up') {
      headers['x-ms-blob-type'] = 'BlockBlob';
      headers['Content-Length'] = bodies[index].length;
    }
    const request = http.request(url, { method: mode === 'up' ? 'PUT' : 'GET', agent, headers }, (response) => {
      response.on('data', (chunk) => {
        if (mode === 'down') bytes += chunk.length;
      });
      response.on('end', () => {
        if (response.statusCode >= 300) fail(`${names[index]}: HTTP ${response.statusCode}`);
        if (mode === 'up') bytes += bodies[index].length;
        finished += 1;
        if (finished === names.length) report();
        else send();
      });
    });
    request.on('error', (error) => fail(`${names[index]}: ${error.message}`));
    request.end(mode === 'up' ? bodies[index] : undefined);
  }

  function report() {
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    const result = { wall, cpu: (cpu.user + cpu.system) / 1e6, bytes, requests: names.length };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    agent.destroy();
  }

  for (let i = 0; i < Math.min(inFlight, names.length); i += 1) send();
}

function fail(message) {
  process.stderr.write(`staging_probe: ${message}\n`);
  process.exit(1);
}

main();
