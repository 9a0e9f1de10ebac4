// Prometheus metrics of load prediction: predicted load per node, producer credit, admission outcomes and decisions
// by kind, all read from the prediction loop at scrape time (nothing here predicts or decides).
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { NodeLoadPrediction } from './load-prediction.ts'

export function registerPredictionMetrics (registry: Registry, prediction: NodeLoadPrediction, nodes: () => Array<{ peerId: string, nodeId: string }>): void {
  const registers = [registry]
  new Gauge({
    name: 'gem_load_predicted',
    help: 'max(current, predicted within 30 s) load per node as this node forecasts it (event-loop utilization, 0-1).',
    labelNames: ['node'],
    registers,
    collect () {
      this.reset()
      for (const n of nodes()) {
        const p = prediction.placementLoad(n.peerId)
        if (p !== undefined) this.set({ node: n.nodeId }, p)
      }
    },
  })
  new Gauge({
    name: 'gem_publish_credit',
    help: 'Fraction of producers\' publish rate this node admits (1 = no limit).',
    registers,
    collect () { this.set(prediction.admission?.currentCredit ?? 1) },
  })
  const outcome = (name: string, help: string, pick: (s: NonNullable<ReturnType<NodeLoadPrediction['view']>['admission']>) => number): void => {
    new Counter({
      name, help, registers,
      collect () { const s = prediction.admission?.stats(); if (s !== undefined) { this.reset(); this.inc(pick(s)) } },
    })
  }
  outcome('gem_publish_admission_delayed_total', 'Publishes that waited for credit.', s => s.delayed)
  outcome('gem_publish_admission_refused_total', 'Publishes refused with OVERLOADED for want of credit.', s => s.refused)
  new Counter({
    name: 'gem_load_decisions_total',
    help: 'Decisions taken on load forecasts, by kind (move-leader, admission, placement).',
    labelNames: ['kind'],
    registers,
    collect () {
      this.reset()
      for (const [kind, n] of Object.entries(prediction.decisionCounts())) this.inc({ kind }, n)
    },
  })
}
