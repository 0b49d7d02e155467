//! Background tasks that stop with their owner: dropped (also part-way through a start-up
//! that failed), they are aborted rather than left running detached.

use tokio::task::JoinHandle;

#[derive(Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }

    pub fn extend(&mut self, tasks: impl IntoIterator<Item = JoinHandle<()>>) {
        self.0.extend(tasks);
    }
}

impl From<Vec<JoinHandle<()>>> for Tasks {
    fn from(tasks: Vec<JoinHandle<()>>) -> Self {
        Self(tasks)
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
