// Line charts of a job's training loss, evaluation loss and learning rate (uPlot, vendored).
import uPlot from "./vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";

// One chart: x = step. `points` is its data ([steps, values]), also exposed on the element (data-points)
// so what is drawn can be checked.
export class StepChart {
  constructor(container, { id, title, label, color }) {
    this.steps = [];
    this.values = [];
    this.element = h("figure.chart", { id, "aria-label": title }, h("figcaption", { text: title }));
    container.append(this.element);
    this.plot = new uPlot({
      width: this.width(), height: 200,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { size: 60 }],
      series: [{ label: "step" }, { label, stroke: color, width: 2, points: { show: true, size: 4 } }],
      legend: { show: true },
    }, [this.steps, this.values], this.element);
    this.element.dataset.points = "0";
    // Follow the grid cell's width (a window resize, a phone turned sideways).
    this.resizer = new ResizeObserver(() => {
      if (Math.abs(this.plot.width - this.width()) > 1) this.plot.setSize({ width: this.width(), height: 200 });
    });
    this.resizer.observe(this.element);
  }

  width() { return Math.max(200, this.element.clientWidth || 320); }

  // Add points (step, value); a step already shown is replaced (a restarted run repeats steps).
  add(rows) {
    let changed = false;
    for (const [step, value] of rows) {
      if (value === null || value === undefined || !isFinite(value)) continue;
      const at = this.steps.indexOf(step);
      if (at >= 0) { this.values[at] = value; changed = true; continue; }
      let i = this.steps.length;
      while (i > 0 && this.steps[i - 1] > step) i--;
      this.steps.splice(i, 0, step);
      this.values.splice(i, 0, value);
      changed = true;
    }
    if (changed) {
      this.plot.setData([this.steps, this.values]);
      this.element.dataset.points = String(this.steps.length);
    }
  }

  destroy() { this.resizer.disconnect(); this.plot.destroy(); }
}
