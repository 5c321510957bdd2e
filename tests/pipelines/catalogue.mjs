// Reads the pipeline catalogue (pipelines/*.sh): each file is a comment that says what the
// pipeline is for, then one shell command, `gst-launch-1.0 ...` or `producer ... | gst-launch-1.0 ...`,
// continued over lines with a trailing backslash. Nothing else (no variables, no second command),
// so that the test can run exactly what a user would.

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO, splitLaunchLine } from '../e2e/lib.mjs';

export const PIPELINES_DIR = path.join(REPO, 'pipelines');

/**
 * @typedef {object} CatalogueEntry
 * @property {string} name file name without `.sh`
 * @property {string} file absolute path
 * @property {string} description the comment, without `#`
 * @property {string[] | null} producer the command before `|` as arguments, or null
 * @property {string[]} gstArgs gst-launch-1.0's arguments (options, then the pipeline)
 * @property {string[]} elements the element factories the pipeline names, in order, no repeats
 */

/**
 * Splits a shell command on the pipe symbols that are not inside quotes.
 * @param {string} command
 */
function splitPipe(command) {
  const parts = [];
  let cur = '';
  let quote = null;
  for (const ch of command) {
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '|') {
      parts.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  parts.push(cur.trim());
  return parts;
}

/**
 * The element factory names in gst-launch-1.0's arguments: every bare word that is not an
 * option (`-e`), a property (`a=b`), caps (`video/x-raw,...`), a pad or element reference (`t.`)
 * or a link (`!`).
 * @param {string[]} args
 */
export function elementsOf(args) {
  const names = [];
  for (const arg of args) {
    if (/^[a-z][a-z0-9_-]*$/i.test(arg) && !names.includes(arg)) names.push(arg);
  }
  return names;
}

/**
 * Parses one catalogue file's text.
 * @param {string} text
 * @param {string} name for error messages
 * @returns {Omit<CatalogueEntry, 'name' | 'file'>}
 */
export function parseCatalogueText(text, name) {
  const comments = [];
  const command = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#!')) continue;
    if (line.startsWith('#')) {
      if (command.length) throw new Error(`${name}: a comment inside the command`);
      comments.push(line.replace(/^#\s?/, ''));
    } else if (line !== '') {
      command.push(line);
    }
  }
  const description = comments.join('\n').trim();
  if (!description) throw new Error(`${name}: no comment saying what the pipeline is for`);
  if (!/latency/i.test(description) || !/quality/i.test(description)) {
    throw new Error(`${name}: the comment should say its latency and quality trade-off`);
  }
  // Backslash-newline continues the command; any other line would be a second command.
  const lines = [];
  for (const line of command) {
    if (lines.length && !lines[lines.length - 1].endsWith('\\')) {
      throw new Error(`${name}: more than one command (line "${line}")`);
    }
    if (lines.length) lines[lines.length - 1] = lines[lines.length - 1].slice(0, -1);
    lines.push(line);
  }
  if (!lines.length) throw new Error(`${name}: no command`);
  if (lines[lines.length - 1].endsWith('\\')) throw new Error(`${name}: the command ends with a backslash`);
  const parts = splitPipe(lines.join(' '));
  if (parts.length > 2) throw new Error(`${name}: more than one pipe`);
  const gst = splitLaunchLine(parts[parts.length - 1]);
  if (gst[0] !== 'gst-launch-1.0') throw new Error(`${name}: the command should run gst-launch-1.0, not ${gst[0]}`);
  const gstArgs = gst.slice(1);
  const elements = elementsOf(gstArgs);
  if (!elements.includes('rfbsink')) throw new Error(`${name}: no rfbsink in the pipeline`);
  return {
    description,
    producer: parts.length === 2 ? splitLaunchLine(parts[0]) : null,
    gstArgs,
    elements,
  };
}

/** Every pipelines/*.sh, sorted by name. @returns {CatalogueEntry[]} */
export function readCatalogue(dir = PIPELINES_DIR) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sh'))
    .sort()
    .map((f) => {
      const file = path.join(dir, f);
      const name = f.slice(0, -3);
      return { name, file, ...parseCatalogueText(readFileSync(file, 'utf8'), name) };
    });
}

/**
 * The pipeline to run in a test: rfbsink gets `port=0` (a free port) and `stats-interval=200`
 * (its frame count on the bus), replacing what the line sets; `filesink location=X` writes to
 * `outDir/X`.
 * @param {string[]} gstArgs
 * @param {{outDir: string}} opts
 * @returns {{args: string[], outputs: string[]}} args for gst-launch-1.0; the files it writes
 */
export function testVariant(gstArgs, { outDir }) {
  const args = [];
  const outputs = [];
  let current = null;
  const flushRfbsink = () => {
    if (current === 'rfbsink') args.push('port=0', 'stats-interval=200');
  };
  for (const arg of gstArgs) {
    const isProperty = /^[a-z][a-z0-9_-]*=/i.test(arg);
    if (!isProperty) {
      flushRfbsink();
      current = arg;
      args.push(arg);
      continue;
    }
    const key = arg.slice(0, arg.indexOf('='));
    if (current === 'rfbsink' && (key === 'port' || key === 'stats-interval')) continue;
    if (current === 'filesink' && key === 'location') {
      const file = path.join(outDir, path.basename(arg.slice(key.length + 1)));
      outputs.push(file);
      args.push(`location=${file}`);
      continue;
    }
    args.push(arg);
  }
  flushRfbsink();
  return { args, outputs };
}
