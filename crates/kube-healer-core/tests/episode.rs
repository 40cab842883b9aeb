//! Which episode a failure belongs to (`decide::episode_of`): one that went on continues the
//! episode of the latest record; one that returns within the cooldown of the latest action
//! continues that action's episode (its ladder goes on); anything else is a new episode.

use kube_healer_core::decide::{Ladder, Recorded, episode_of};

const COOLDOWN: i64 = 600;

fn rec(created: i64, episode: i64, acted: bool) -> Recorded {
    Recorded {
        created,
        episode,
        acted,
    }
}

#[test]
fn no_record_a_new_episode() {
    assert_eq!(episode_of([], 1_000, COOLDOWN), 1_000);
}

#[test]
fn a_failure_that_went_on_keeps_its_episode() {
    // A window that slid: the failure seems to begin at 1,500, before the latest record (a hold).
    let records = [rec(1_000, 400, true), rec(2_000, 400, false)];
    assert_eq!(episode_of(records, 1_500, COOLDOWN), 400);
    // Not before the record's episode: an earlier start is another failure's.
    assert_eq!(episode_of(records, 300, COOLDOWN), 300);
}

#[test]
fn a_failure_back_within_the_cooldown_of_the_last_action_goes_on() {
    let records = [rec(1_000, 400, true), rec(1_100, 400, false)];
    // Back at 1,500: 500 s after the action, within the cooldown.
    assert_eq!(episode_of(records, 1_500, COOLDOWN), 400);
    // Back at 1,700: past it, a new episode.
    assert_eq!(episode_of(records, 1_700, COOLDOWN), 1_700);
    // Only holds before: a failure back after a hold waits its `for` again.
    assert_eq!(episode_of([rec(1_000, 400, false)], 1_100, COOLDOWN), 1_100);
}

#[test]
fn a_ladder_is_rebuilt_from_the_steps_taken() {
    // Steps 1 and 2 (0-based 0, 1) given out of order, on a 3-step ladder.
    let ladder = Ladder::from_steps([(1, 1_300), (0, 1_000)], 400, 3);
    assert_eq!(
        (
            ladder.episode,
            ladder.attempts,
            ladder.next_step,
            ladder.last_action
        ),
        (400, 2, 2, Some((1, 1_300)))
    );
    // The last step repeats.
    let ladder = Ladder::from_steps([(0, 1_000), (1, 1_300), (1, 1_900)], 400, 2);
    assert_eq!((ladder.attempts, ladder.next_step), (3, 1));
}

#[test]
fn a_ladder_is_taken_up_at_its_latest_step() {
    // The latest step (1, at 1,300) is decided again under its own record name: finished if a
    // crash cut it short, found done if not; the steps before it count as taken.
    let (ladder, latest) = Ladder::resuming([(1, 1_300), (0, 1_000)], 400, 3);
    assert_eq!(latest, Some((1, 1_300)));
    assert_eq!(
        (ladder.attempts, ladder.next_step, ladder.last_action),
        (1, 1, Some((0, 1_000)))
    );
    let (ladder, latest) = Ladder::resuming([], 400, 3);
    assert_eq!((ladder, latest), (Ladder::new(400), None));
}
