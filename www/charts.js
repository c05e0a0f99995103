// The report's charts, drawn with Chart.js (vendored from npm, loaded as a classic
// script before this module). Chart.js draws on canvases and sets sizes through the
// CSSOM, so the page's style-src 'self' policy holds.
//
// Both charts take every figure from the report. The only computation here converts a
// published Wh figure to gCO2e with the report's own grid intensity.

// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
const TASK_COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];
const REFERENCE_COLOUR = '#6b6b6b';
const SMALL_COLOUR = '#1d6b3a';
const ONE_OFF_COLOUR = '#56B4E9';
const HOSTED_COLOUR = '#D55E00';

const charts = new Map();

function draw(canvas, config) {
  charts.get(canvas.id)?.destroy();
  const chart = new window.Chart(canvas, config);
  charts.set(canvas.id, chart);
  return chart;
}

/** Destroys every chart; the canvases stay. */
export function clearCharts() {
  for (const chart of charts.values()) chart.destroy();
  charts.clear();
}

/** Returns the published per-prompt figures in gCO2e, converting with the report's grid where a figure gives Wh only. */
export function referenceLines(report) {
  return (report.hosted_reference ?? []).map(({ figure }) => ({
    label: figure.label,
    provider: figure.provider,
    published: figure.published,
    g: figure.g_co2e_per_prompt ?? (figure.wh_per_prompt * report.grid.g_co2e_per_kwh) / 1000,
    converted: figure.g_co2e_per_prompt == null,
  }));
}

/** Returns one point per task for the small model and, where the task has a hosted comparison, one for the hosted LLM. */
export function scorePoints(report) {
  return report.tasks.map((task) => {
    const comparison = (report.comparisons ?? []).find((c) => c.task === task.task);
    return {
      task: task.task,
      small: { x: task.energy.g_co2e_per_item.estimate, y: task.score },
      hosted: comparison
        ? { x: comparison.hosted_g_co2e_per_item.estimate, y: comparison.hosted_score }
        : null,
    };
  });
}

const positive = (value) => Number.isFinite(value) && value > 0;

// A logarithmic axis labels its powers of ten only; the grid keeps every tick.
const powerOfTen = (value) => Math.abs(Math.log10(value) - Math.round(Math.log10(value))) < 1e-9;

// Writes each reference line's label beside it, upright along the line, so the lines
// can be distinguished without the legend's colours, which are all the same grey.
const referenceLabels = {
  id: 'seedlingReferenceLabels',
  afterDatasetsDraw(chart) {
    const { ctx, chartArea, scales } = chart;
    ctx.save();
    ctx.fillStyle = REFERENCE_COLOUR;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    // Lines closer than a label's height share the first one's label.
    const placed = chart.data.datasets
      .map((dataset, index) => ({ dataset, index }))
      .filter(({ dataset, index }) => dataset.shortLabel && chart.isDatasetVisible(index))
      .map(({ dataset }) => ({ text: dataset.shortLabel, x: scales.x.getPixelForValue(dataset.data[0].x) }))
      .filter(({ x }) => x >= chartArea.left && x <= chartArea.right)
      .sort((a, b) => a.x - b.x);
    let last = -Infinity;
    for (const { text, x } of placed) {
      if (x - last < 13) continue;
      last = x;
      ctx.save();
      ctx.translate(x - 3, chartArea.top + 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(text, 0, 0);
      ctx.restore();
    }
    ctx.restore();
  },
};

/**
 * Score against gCO2e per query on a logarithmic axis. Each task is a segment from the
 * small model (circle) to the hosted LLM (triangle); the published per-prompt figures
 * are dashed vertical lines.
 */
export function drawScoreChart(canvas, report, { t, locale }) {
  const datasets = scorePoints(report).map((point, index) => {
    const data = [point.small, point.hosted].filter((p) => p && positive(p.x));
    return {
      label: t(`task_${point.task}`),
      data,
      showLine: data.length > 1,
      borderColor: TASK_COLOURS[index % TASK_COLOURS.length],
      backgroundColor: TASK_COLOURS[index % TASK_COLOURS.length],
      pointStyle: data.map((_, i) => (i === 0 ? 'circle' : 'triangle')),
      pointRadius: 7,
      pointHoverRadius: 9,
    };
  });
  for (const line of referenceLines(report)) {
    if (!positive(line.g)) continue;
    datasets.push({
      label: t('chartReference', { label: line.label, published: line.published }),
      shortLabel: line.label,
      data: [{ x: line.g, y: 0 }, { x: line.g, y: 1 }],
      showLine: true,
      borderColor: REFERENCE_COLOUR,
      borderDash: [6, 4],
      borderWidth: 1.5,
      pointRadius: 0,
      pointHoverRadius: 0,
    });
  }
  const grams = (value) => new Intl.NumberFormat(locale, { maximumSignificantDigits: 2 }).format(value);
  return draw(canvas, {
    type: 'scatter',
    data: { datasets },
    plugins: [referenceLabels],
    options: {
      animation: false,
      locale,
      maintainAspectRatio: false,
      scales: {
        x: {
          type: 'logarithmic',
          title: { display: true, text: t('chartCarbonAxis') },
          ticks: { autoSkip: false, callback: (value) => (powerOfTen(value) ? grams(value) : '') },
        },
        y: { min: 0, max: 1, title: { display: true, text: t('chartScoreAxis') } },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 14 } },
        tooltip: {
          callbacks: {
            label: (context) => {
              const dataset = context.dataset;
              if (dataset.pointRadius === 0) return `${dataset.label}: ${grams(context.parsed.x)} g`;
              const model = context.dataIndex === 0 ? t('chartSmall') : t('chartHosted');
              return `${dataset.label}, ${model}: ${t('chartPoint', {
                score: new Intl.NumberFormat(locale, { maximumFractionDigits: 3 }).format(context.parsed.y),
                g: grams(context.parsed.x),
              })}`;
            },
          },
        },
      },
    },
  });
}

/** Splits each task's energy per query into inference on this device, the one-off costs spread over the amortised queries, and the hosted LLM. */
export function energyBars(report) {
  const oneOff = report.one_off?.wh_per_query?.estimate ?? 0;
  return report.tasks.map((task) => {
    const comparison = (report.comparisons ?? []).find((c) => c.task === task.task);
    return {
      task: task.task,
      inference: task.energy.attributional_wh_per_item,
      oneOff,
      hosted: comparison ? comparison.hosted_wh_per_item : null,
    };
  });
}

/** Wh per query by task on a logarithmic axis, since the bars differ by orders of magnitude. */
export function drawEnergyChart(canvas, report, { t, locale }) {
  const bars = energyBars(report);
  const wh = (value) => new Intl.NumberFormat(locale, { maximumSignificantDigits: 2 }).format(value);
  const datasets = [
    { label: t('chartInference'), data: bars.map((bar) => bar.inference.estimate), backgroundColor: SMALL_COLOUR, bands: bars.map((bar) => bar.inference) },
    { label: t('chartOneOff', { queries: new Intl.NumberFormat(locale).format(report.one_off?.amortised_queries ?? 0) }), data: bars.map((bar) => bar.oneOff), backgroundColor: ONE_OFF_COLOUR },
  ];
  if (bars.some((bar) => bar.hosted)) {
    datasets.push({
      label: t('chartHostedEnergy'), data: bars.map((bar) => bar.hosted?.estimate ?? null),
      backgroundColor: HOSTED_COLOUR, bands: bars.map((bar) => bar.hosted),
    });
  }
  return draw(canvas, {
    type: 'bar',
    data: { labels: bars.map((bar) => t(`task_${bar.task}`)), datasets },
    options: {
      animation: false,
      locale,
      indexAxis: 'y',
      maintainAspectRatio: false,
      scales: {
        x: {
          type: 'logarithmic',
          title: { display: true, text: t('chartEnergyAxis') },
          ticks: { autoSkip: false, callback: (value) => (powerOfTen(value) ? wh(value) : '') },
        },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 14 } },
        tooltip: {
          callbacks: {
            label: (context) => {
              const band = context.dataset.bands?.[context.dataIndex];
              const range = band ? ` (${wh(band.low)}–${wh(band.high)})` : '';
              return `${context.dataset.label}: ${wh(context.parsed.x)} Wh${range}`;
            },
          },
        },
      },
    },
  });
}

function wrap(context, text, width) {
  const lines = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    const next = line ? `${line} ${word}` : word;
    if (context.measureText(next).width > width && line) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * Draws a 1200 × 675 picture to share: the headline, one line per task and the score
 * chart. `lines` are already worded in the page's language. Resolves to a PNG blob.
 */
export function summaryPicture({ title, headline, lines, footer, chartCanvas }) {
  const canvas = document.createElement('canvas');
  canvas.width = 1200;
  canvas.height = 675;
  const context = canvas.getContext('2d');
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = SMALL_COLOUR;
  context.font = 'bold 40px system-ui, sans-serif';
  context.fillText(title, 40, 64);

  let y = 110;
  context.font = '600 24px system-ui, sans-serif';
  for (const line of wrap(context, headline, 540)) {
    context.fillText(line, 40, y);
    y += 32;
  }
  y += 12;
  context.fillStyle = '#1b1f1d';
  context.font = '18px system-ui, sans-serif';
  for (const text of lines) {
    for (const line of wrap(context, text, 540)) {
      if (y > 610) break;
      context.fillText(line, 40, y);
      y += 24;
    }
    y += 6;
  }
  if (chartCanvas && chartCanvas.width > 0) {
    const width = 560;
    const height = Math.min(540, (chartCanvas.height / chartCanvas.width) * width);
    context.drawImage(chartCanvas, 610, 90, width, height);
  }
  context.fillStyle = '#4a554f';
  context.font = '15px system-ui, sans-serif';
  context.fillText(footer, 40, 650);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the browser could not encode the picture'))), 'image/png'));
}
