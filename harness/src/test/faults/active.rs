//! The faults currently applied to the cluster, each recorded in the history: a nemesis
//! `start` when applied, a `stop` when healed (or at once, with the error, if applying it
//! failed). Used by the fault schedule and by the scripted nemeses alike.

use anyhow::Context;
use nemesis::schedule::Fault;
use workloads::recorder::{NemesisPhase, Recorder};

use crate::system::System;

/// Applied faults, healed last-applied first.
pub struct ActiveFaults<'a> {
    cluster: &'a dyn System,
    recorder: &'a Recorder,
    active: Vec<(Fault, serde_json::Value)>,
}

impl<'a> ActiveFaults<'a> {
    /// None applied yet.
    pub fn new(cluster: &'a dyn System, recorder: &'a Recorder) -> Self {
        ActiveFaults {
            cluster,
            recorder,
            active: Vec::new(),
        }
    }

    /// Whether nothing is applied.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Applies one (single) fault on top of the active ones and records its start. If it
    /// cannot be applied, its stop is recorded at once with the error, which is returned.
    ///
    /// A power loss is recorded once applied, since its event says what it discarded
    /// (`"discarded": {"n1": {"files", "bytes", "entries"}}`), known only then; its stop
    /// repeats it.
    pub async fn apply(&mut self, part: &Fault) -> anyhow::Result<()> {
        if let Fault::Failpoint { after_ms, .. } = part {
            // Set (and recorded) that long after the parts before it.
            tokio::time::sleep(std::time::Duration::from_millis(*after_ms)).await;
        }
        let mut desc = part.describe();
        let record_after = matches!(part, Fault::Power { .. });
        if !record_after {
            self.recorder.nemesis(NemesisPhase::Start, desc.clone());
        }
        match self.cluster.apply(part).await {
            Ok(details) => {
                if let (Some(serde_json::Value::Object(m)), Some(d)) =
                    (details, desc.as_object_mut())
                {
                    d.extend(m);
                }
                if record_after {
                    self.recorder.nemesis(NemesisPhase::Start, desc.clone());
                }
                self.active.push((part.clone(), desc));
                Ok(())
            }
            Err(e) => {
                if record_after {
                    self.recorder.nemesis(NemesisPhase::Start, desc.clone());
                }
                let mut d = desc.clone();
                if let Fault::Failpoint { .. } = part {
                    // Some nodes may have taken it (and crashed there): undo that now.
                    if let Ok(Some(outcome)) = self.cluster.heal(part).await {
                        d["outcome"] = outcome;
                    }
                }
                d["error"] = serde_json::json!(format!("{e:#}"));
                self.recorder.nemesis(NemesisPhase::Stop, d);
                Err(e.context(format!("applying {desc}")))
            }
        }
    }

    /// Heals every active fault, last applied first, recording each stop. Every fault is
    /// tried; the first error is returned.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some((part, mut desc)) = self.active.pop() {
            // A failpoint's stop says what the window did (fires, crashes); coverage pairs
            // start and stop without the `outcome`.
            let r = match self.cluster.heal(&part).await {
                Ok(Some(outcome)) => {
                    desc["outcome"] = outcome;
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            self.recorder.nemesis(NemesisPhase::Stop, desc.clone());
            if let Err(e) = r.with_context(|| format!("healing {desc}")) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
