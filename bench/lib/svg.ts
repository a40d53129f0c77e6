// A small SVG line-chart generator for the benchmark's figures (one panel per case, one line per
// server), so the README can show them without a charting dependency. Pure: spec in, text out.

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color: string;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  series: Series[];
}

export interface Axis {
  label: string;
  /** Maps a data value to a linear position (e.g. percentiles to -log10(1 - q)); identity by default. */
  transform?: (value: number) => number;
  /** Fixed ticks in data values; otherwise ticks at round numbers from 0 to the largest value. */
  ticks?: { value: number; label: string }[];
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  panels: Panel[];
  x: Axis;
  y: Axis;
}

const PANEL_WIDTH = 300;
const PANEL_HEIGHT = 220;
const MARGIN = { left: 56, right: 16, top: 28, bottom: 44 };
const HEADER = 64;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

function fmt(n: number): string {
  return Number(n.toFixed(3)).toString();
}

/** Round tick values from 0 to at least `max`: 1, 2 or 5 times a power of ten apart. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const ticks: number[] = [];
  for (let v = 0; v < max + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function panelSvg(panel: Panel, spec: ChartSpec, originX: number, originY: number): string {
  const tx = spec.x.transform ?? ((v: number) => v);
  const ty = spec.y.transform ?? ((v: number) => v);
  const points = panel.series.flatMap((s) => s.points);
  const xTicks =
    spec.x.ticks ??
    niceTicks(Math.max(...points.map(([x]) => x), 0)).map((v) => ({ value: v, label: fmt(v) }));
  const yTicks =
    spec.y.ticks ??
    niceTicks(Math.max(...points.map(([, y]) => y), 0)).map((v) => ({ value: v, label: fmt(v) }));
  const xs = [...xTicks.map((t) => tx(t.value)), ...points.map(([x]) => tx(x))];
  const ys = [...yTicks.map((t) => ty(t.value)), ...points.map(([, y]) => ty(y))];
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const w = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (v: number) => originX + MARGIN.left + (x1 === x0 ? 0 : ((tx(v) - x0) / (x1 - x0)) * w);
  const py = (v: number) => originY + MARGIN.top + h - (y1 === y0 ? 0 : ((ty(v) - y0) / (y1 - y0)) * h);
  const out: string[] = [];
  out.push(
    `<text x="${fmt(originX + MARGIN.left + w / 2)}" y="${fmt(originY + 16)}" text-anchor="middle" font-size="13" font-weight="600">${esc(panel.title)}</text>`,
  );
  for (const t of yTicks) {
    const y = fmt(py(t.value));
    out.push(
      `<line x1="${fmt(originX + MARGIN.left)}" x2="${fmt(originX + MARGIN.left + w)}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${fmt(originX + MARGIN.left - 6)}" y="${y}" dy="4" text-anchor="end" font-size="11" fill="#555">${esc(t.label)}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = fmt(px(t.value));
    out.push(
      `<line x1="${x}" x2="${x}" y1="${fmt(originY + MARGIN.top)}" y2="${fmt(originY + MARGIN.top + h)}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${fmt(originY + MARGIN.top + h + 16)}" text-anchor="middle" font-size="11" fill="#555">${esc(t.label)}</text>`,
    );
  }
  out.push(
    `<rect x="${fmt(originX + MARGIN.left)}" y="${fmt(originY + MARGIN.top)}" width="${fmt(w)}" height="${fmt(h)}" fill="none" stroke="#bbb"/>`,
    `<text x="${fmt(originX + MARGIN.left + w / 2)}" y="${fmt(originY + PANEL_HEIGHT - 6)}" text-anchor="middle" font-size="11" fill="#333">${esc(spec.x.label)}</text>`,
    `<text transform="translate(${fmt(originX + 14)} ${fmt(originY + MARGIN.top + h / 2)}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">${esc(spec.y.label)}</text>`,
  );
  for (const s of panel.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${fmt(px(x))},${fmt(py(y))}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      ...s.points.map(
        ([x, y]) => `<circle cx="${fmt(px(x))}" cy="${fmt(py(y))}" r="2.5" fill="${s.color}"/>`,
      ),
    );
  }
  return out.join('\n');
}

export function lineChart(spec: ChartSpec): string {
  const width = Math.max(1, spec.panels.length) * PANEL_WIDTH;
  const height = HEADER + PANEL_HEIGHT;
  const names = [...new Map(spec.panels.flatMap((p) => p.series).map((s) => [s.name, s])).values()];
  const legend = names
    .map((s, i) => {
      const x = 16 + i * 170;
      return [
        `<line x1="${x}" x2="${x + 24}" y1="52" y2="52" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
        `<text x="${x + 30}" y="56" font-size="12">${esc(s.name)}</text>`,
      ].join('\n');
    })
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" ${FONT}>`,
    // What a screen reader (and the README's image link) says about the chart.
    `<title>${esc(spec.subtitle ? `${spec.title}: ${spec.subtitle}` : spec.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="16" y="20" font-size="15" font-weight="600">${esc(spec.title)}</text>`,
    spec.subtitle ? `<text x="16" y="37" font-size="11" fill="#555">${esc(spec.subtitle)}</text>` : '',
    legend,
    ...spec.panels.map((p, i) => panelSvg(p, spec, i * PANEL_WIDTH, HEADER)),
    '</svg>',
    '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}
