//! The one step model of forward and undo runs: [`Step`] over a kind ([`Kind`]: the forward
//! [`crate::steps::StepKind`] or the undo [`crate::rollback::UndoKind`]), and the one
//! [`Builder`] both planners use: a step's id, name and downtime come from its kind, and
//! [`Builder::finish`] orders the DAG and sets the lanes with petgraph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use omsup_model::StepId;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a kind of step tells the model, the runner and the journal.
pub trait Kind: Debug + Clone + PartialEq + Serialize + DeserializeOwned {
    /// What a step of this kind returns (journaled as its outcome, read back as this type).
    type Output: Debug + Clone + Serialize + DeserializeOwned;

    /// The kind's name, journaled with each event; the step's id ends with it.
    fn name(&self) -> &'static str;
    /// The step's id, built by its [`StepId`] constructor.
    fn id(&self) -> StepId;
    /// Inside the downtime window.
    fn in_downtime(&self) -> bool;
    /// The node the step acts on, when it acts on one.
    fn node(&self) -> Option<&str>;
    /// One line for the progress view, from the step's output.
    fn summary(output: &Self::Output) -> Option<String>;
}

/// One step of a plan (forward or undo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step<K = crate::steps::StepKind> {
    /// Stable across runs: `node[10.0.0.2].start-new`, `db[rm_428].backup`, `ha.off`,
    /// `undo.db[rm_428].restore`.
    pub id: StepId,
    pub kind: K,
    pub depends_on: Vec<StepId>,
    /// What it changes, one line.
    pub changes: String,
    /// Inside the downtime window (the window is the span of these steps: it opens when the
    /// first of them starts and closes when the last ends).
    pub downtime: bool,
    /// Its level in the graph: steps of one lane may run at the same time.
    pub lane: usize,
}

/// The step with this id.
pub fn find<'s, K>(steps: &'s [Step<K>], id: &str) -> Option<&'s Step<K>> {
    steps.iter().find(|s| s.id.as_str() == id)
}

/// The steps grouped by lane, in order.
pub fn lanes<K>(steps: &[Step<K>]) -> Vec<Vec<&Step<K>>> {
    let mut lanes: Vec<Vec<&Step<K>>> = Vec::new();
    for step in steps {
        if lanes.len() <= step.lane {
            lanes.resize_with(step.lane + 1, Vec::new);
        }
        lanes[step.lane].push(step);
    }
    lanes
}

/// Builds a plan's steps: add them with their dependencies, then [`Builder::finish`].
#[derive(Debug)]
pub struct Builder<K> {
    steps: Vec<Step<K>>,
}

impl<K> Default for Builder<K> {
    fn default() -> Self {
        Self { steps: Vec::new() }
    }
}

impl<K: Kind> Builder<K> {
    /// Adds a step of `kind` after `depends_on`; returns its id.
    pub fn add(&mut self, kind: K, depends_on: Vec<StepId>, changes: impl Into<String>) -> StepId {
        let id = kind.id();
        self.steps.push(Step {
            id: id.clone(),
            downtime: kind.in_downtime(),
            kind,
            depends_on,
            changes: changes.into(),
            lane: 0,
        });
        id
    }

    /// The steps no other step depends on (the ends of the graph so far).
    pub fn sinks(&self) -> Vec<StepId> {
        let depended_on: BTreeSet<&StepId> =
            self.steps.iter().flat_map(|s| &s.depends_on).collect();
        self.steps
            .iter()
            .filter(|s| !depended_on.contains(&s.id))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Topological order (ties in the order added) with lanes set, with petgraph; panics on a
    /// cycle or an unknown dependency, which would be a bug in a planner (tested).
    pub fn finish(self) -> Vec<Step<K>> {
        let steps = self.steps;
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let indices: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        let by_id: BTreeMap<&StepId, usize> =
            steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
        for (i, step) in steps.iter().enumerate() {
            for dep in &step.depends_on {
                graph.add_edge(indices[by_id[dep]], indices[i], ());
            }
        }
        let sorted = petgraph::algo::toposort(&graph, None).expect("the step graph is acyclic");
        let mut lanes = vec![0usize; steps.len()];
        for index in &sorted {
            let i = graph[*index];
            lanes[i] = steps[i]
                .depends_on
                .iter()
                .map(|d| lanes[by_id[d]] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut ordered: Vec<(usize, usize)> = (0..steps.len()).map(|i| (lanes[i], i)).collect();
        ordered.sort();
        let mut steps: Vec<Option<Step<K>>> = steps.into_iter().map(Some).collect();
        ordered
            .into_iter()
            .map(|(lane, i)| {
                let mut step = steps[i].take().expect("each step once");
                step.lane = lane;
                step
            })
            .collect()
    }
}
