//! Unit tests of the view types: stamps keep seconds, UIDs round-trip.

use super::Uid;

#[test]
fn stamps_keep_seconds() {
    use super::Stamp;
    for t in [1_800_000_000, 946_684_800, 4_000_000_000] {
        assert_eq!(Stamp::new(Some(t)).get(), Some(t));
    }
    assert_eq!(Stamp::new(None).get(), None);
    assert_eq!(Stamp::new(Some(0)).get(), Some(946_684_800), "before 2000 clamps");
}

#[test]
fn uids_round_trip() {
    for text in [
        "4e4a1616-36d6-43d9-9bde-091091403faf",
        "uid-x",
        "",
        "4E4A1616-36D6-43D9-9BDE-091091403FAF",
        "4e4a1616x36d6-43d9-9bde-091091403faf",
    ] {
        assert_eq!(Uid::parse(text).to_string(), text);
        assert!(Uid::parse(text).is(text), "{text}");
        assert!(
            !Uid::parse(text).is("4e4a1616-36d6-43d9-9bde-091091403fae"),
            "{text}"
        );
    }
    assert!(matches!(
        Uid::parse("4e4a1616-36d6-43d9-9bde-091091403faf"),
        Uid::Uuid(_)
    ));
}
