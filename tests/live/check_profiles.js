// Independent readers for vmstack's profile outputs: the pprof file decoded by the
// pprof-format package, the speedscope file validated against speedscope's own schema.
// Usage: node check_profiles.js NODE_MODULES_DIR FILE.pb.gz [FILE.json]
// Prints one JSON line: what was read, for the Python test to assert on.
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const mods = process.argv[2];
const {Profile} = require(path.join(mods, 'pprof-format'));
const Ajv = require(path.join(mods, 'ajv'));

const p = Profile.decode(zlib.gunzipSync(fs.readFileSync(process.argv[3])));
const st = p.stringTable.strings;
const fn = new Map(p.function.map(f => [String(f.id), f]));
const loc = new Map(p.location.map(l => [String(l.id), l]));
const samples = p.sample.map(s => ({
  // leaf first, as pprof has it
  frames: s.locationId.map(id => {
    const l = loc.get(String(id)).line[0], f = fn.get(String(l.functionId));
    return {name: st[f.name], file: st[f.filename], line: Number(l.line)};
  }),
  values: s.value.map(Number),
  labels: Object.fromEntries(s.label.map(l => [st[l.key], l.str ? st[l.str] : Number(l.num)])),
}));

let speedscope = null;
if (process.argv[4]) {
  const schema = JSON.parse(fs.readFileSync(
    path.join(mods, 'speedscope', 'dist', 'release', 'file-format-schema.json')));
  const ss = JSON.parse(fs.readFileSync(process.argv[4]));
  const ajv = new Ajv({strict: false});
  const valid = ajv.validate(schema, ss);
  speedscope = {valid, errors: ajv.errors, doc: ss};
}

console.log(JSON.stringify({
  pprof: {
    sample_types: p.sampleType.map(v => st[v.type] + '/' + st[v.unit]),
    period: Number(p.period),
    period_type: p.periodType ? st[p.periodType.type] + '/' + st[p.periodType.unit] : null,
    default_sample_type: st[Number(p.defaultSampleType)] || null,
    samples,
  },
  speedscope,
}));
