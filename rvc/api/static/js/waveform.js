// The result's waveform on a canvas: one min/max bar per device pixel column, scaled to the peak so a
// quiet result still shows its shape (the peak level goes in the canvas's label).

const QUIETEST_SCALED = 1e-3; // below -60 dBFS the drawing stays at its true size: that is silence

function peakOf(samples) {
  let peak = 0;
  for (let i = 0; i < samples.length; i += 1) peak = Math.max(peak, Math.abs(samples[i]));
  return peak;
}

// Returns the peak level in words ("-40.0 dBFS"), or "" when there is nothing to draw.
export function drawWaveform(canvas, samples) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const style = getComputedStyle(document.documentElement);
  ctx.clearRect(0, 0, width, height);
  const middle = height / 2;
  ctx.fillStyle = style.getPropertyValue("--border").trim() || "#ccc";
  ctx.fillRect(0, Math.floor(middle), width, Math.max(1, Math.round(ratio)));
  canvas.dataset.samples = String(samples ? samples.length : 0);
  if (!samples || !samples.length) {
    canvas.setAttribute("aria-label", "Waveform of the result (none yet)");
    return "";
  }
  const peak = peakOf(samples);
  const level = peak > 0 ? `${(20 * Math.log10(peak)).toFixed(1)} dBFS` : "silence";
  canvas.dataset.peak = peak.toFixed(4);
  canvas.setAttribute("aria-label", `Waveform of the result, ${samples.length} samples, peak ${level}`);
  const scale = middle / Math.max(peak, QUIETEST_SCALED);
  ctx.fillStyle = style.getPropertyValue("--wave").trim() || "#2456c7";
  const perColumn = samples.length / width;
  for (let x = 0; x < width; x += 1) {
    const from = Math.floor(x * perColumn);
    const to = Math.max(from + 1, Math.floor((x + 1) * perColumn));
    let low = 1;
    let high = -1;
    for (let i = from; i < to && i < samples.length; i += 1) {
      if (samples[i] < low) low = samples[i];
      if (samples[i] > high) high = samples[i];
    }
    if (high < low) continue;
    ctx.fillRect(x, middle - high * scale, 1, Math.max(1, (high - low) * scale));
  }
  return level;
}
