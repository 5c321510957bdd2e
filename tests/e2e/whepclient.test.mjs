// GStreamer's own WHEP client pulls the stream: gst-plugins-rs' whepclientsrc (whep.mjs), in a
// pipeline as a media engineer writes it, decodes 1280x720 H.264 and VP8 from rfbsink's /whep
// and sees the colour bars. Its offer has H.264 only as profile-level-id=42e016 with no
// packetization-mode, which a one-encode server must still answer. In a private network
// namespace (netns.mjs): WebRTC needs host candidates.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SMPTE_BARS, requireElements, startPipeline } from './lib.mjs';
import { ADDRESS_A, runInPrivateNetns } from './netns.mjs';
import { pull, whepPlugin } from './whep.mjs';

runInPrivateNetns('whepclient.test');

const WIDTH = 1280;
const HEIGHT = 720;
const SOURCE = `videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=${WIDTH},height=${HEIGHT},framerate=30/1`;
const FRAMES = 60;

// The third: an element with sound. whepclientsrc offers to receive audio and gets the Opus
// track; a pipeline that links only the picture still decodes it.
const SOUND = ' audiotestsrc is-live=true ! audioconvert ! opusenc frame-size=10 ! sink.audio';
for (const [name, encoder, element, sound] of [
  ['H.264', 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30', 'x264enc', ''],
  ['VP8', 'vp8enc deadline=1 cpu-used=16 lag-in-frames=0 keyframe-max-dist=30', 'vp8enc', ''],
  ['H.264 with sound', 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30', 'x264enc', SOUND],
]) {
  test(`whepclientsrc (gst-plugins-rs) pulls ${WIDTH}x${HEIGHT} ${name} from /whep and decodes the colour bars`, { timeout: 3_700_000 }, async (t) => {
    if (!requireElements(t, [element, 'webrtcbin', 'nicesrc'])) return;
    whepPlugin();
    const p = await startPipeline(`${SOURCE} ! ${encoder} ! rfbsink name=sink port=0 address=${ADDRESS_A}${sound}`);
    t.after(() => p.stop());
    const url = new URL(p.url);
    const token = url.searchParams.get('rfb_token') ?? '';
    const points = SMPTE_BARS.map((_, i) => [Math.round(((i + 0.5) * WIDTH) / 7), 100]);
    const got = await pull(`${url.origin}/whep`, token, { points, frames: FRAMES }).catch((e) => { throw new Error(`${e.message}\n${p.logs()}`); });
    t.diagnostic(`${name}: ${got.frames} frames decoded at ${got.width}x${got.height}; ${got.caps}`);
    assert.equal(got.frames, FRAMES);
    assert.deepEqual([got.width, got.height], [WIDTH, HEIGHT]);
    got.pixels.forEach((px, i) => {
      const want = SMPTE_BARS[i][1];
      const off = Math.max(...px.map((v, k) => Math.abs(v - want[k])));
      assert.ok(off <= 40, `bar ${i} at ${points[i]}: got ${px}, want ${want}\n${p.logs()}`);
    });
  });
}
