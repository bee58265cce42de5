//! Alarms, replicated like everything else: the NOSPACE alarm refuses
//! writes that add data until an operator frees space and disarms it.
//!
//! # Correctness
//! An alarm is raised or cleared only by a committed log entry, so every
//! replica refuses or accepts the same writes.

use crate::store::Store;
use crate::types::*;

impl Store {
    /// Raises or clears an alarm; answers with the alarms it changed.
    pub(crate) fn alarm(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let entry = (req.member_id, req.alarm);
        let changed = match req.action {
            AlarmAction::Activate => self.alarms.insert(entry),
            AlarmAction::Deactivate => self.alarms.remove(&entry),
        };
        AlarmResponse {
            alarms: if changed {
                vec![AlarmMember {
                    member_id: req.member_id,
                    alarm: req.alarm,
                }]
            } else {
                Vec::new()
            },
        }
    }

    /// Every raised alarm.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .map(|(member_id, alarm)| AlarmMember {
                member_id: *member_id,
                alarm: *alarm,
            })
            .collect()
    }

    /// Whether the NOSPACE alarm is raised by any member.
    pub fn no_space(&self) -> bool {
        self.alarms.iter().any(|(_, a)| *a == AlarmType::NoSpace)
    }
}
