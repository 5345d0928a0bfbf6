//! Stop strings split across deltas, and per-token stop conditions.

#![allow(clippy::unwrap_used)]

use arle_engine::stop::{Stop, StopChecker, TokenStopper};
use arle_engine::{FinishReason, SamplingParams};

fn stops(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Feeds `deltas`; returns everything emitted (plus `flush` at the end) and the stop.
fn run(stop_list: &[&str], deltas: &[&str]) -> (String, Option<Stop>) {
    let mut checker = StopChecker::new(&stops(stop_list));
    let mut emitted = String::new();
    for delta in deltas {
        let (text, stop) = checker.push(delta);
        emitted.push_str(&text);
        if stop.is_some() {
            assert_eq!(
                checker.push("more"),
                (String::new(), None),
                "pushes after a stop"
            );
            assert_eq!(checker.flush(), "", "nothing held after a stop");
            return (emitted, stop);
        }
    }
    emitted.push_str(&checker.flush());
    (emitted, None)
}

/// Every way to cut `text` into `num_pieces` non-empty pieces at char boundaries.
fn splits(text: &str, num_pieces: usize) -> Vec<Vec<&str>> {
    let cuts: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .collect();
    let mut out = Vec::new();
    fn rec<'a>(
        text: &'a str,
        cuts: &[usize],
        from: usize,
        left: usize,
        acc: &mut Vec<usize>,
        out: &mut Vec<Vec<&'a str>>,
    ) {
        if left == 0 {
            let mut bounds = vec![0];
            bounds.extend(acc.iter().copied());
            bounds.push(text.len());
            out.push(bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect());
            return;
        }
        for (k, &cut) in cuts.iter().enumerate().skip(from) {
            acc.push(cut);
            rec(text, cuts, k + 1, left - 1, acc, out);
            acc.pop();
        }
    }
    rec(text, &cuts, 0, num_pieces - 1, &mut Vec::new(), &mut out);
    out
}

#[test]
fn stop_string_split_across_one_to_four_deltas() {
    let text = "Hi there STOP tail";
    for num_pieces in 1..=4 {
        let all = splits(text, num_pieces);
        assert!(!all.is_empty());
        for deltas in all {
            let (emitted, stop) = run(&["STOP"], &deltas);
            assert_eq!(emitted, "Hi there ", "deltas {deltas:?}");
            assert_eq!(stop, Some(Stop::String { index: 0 }), "deltas {deltas:?}");
        }
    }
}

#[test]
fn emitted_text_is_final_and_minimal_while_streaming() {
    // Each push emits exactly the text that cannot start a stop string.
    let mut checker = StopChecker::new(&stops(&["<end>", "##"]));
    assert_eq!(checker.push("abc<"), ("abc".to_string(), None));
    assert_eq!(checker.held_text(), "<");
    assert_eq!(checker.push("en"), (String::new(), None));
    assert_eq!(checker.push("x#"), ("<enx".to_string(), None));
    assert_eq!(checker.held_text(), "#");
    assert_eq!(
        checker.push("#!"),
        (String::new(), Some(Stop::String { index: 1 }))
    );
    assert!(checker.is_stopped());
}

#[test]
fn overlapping_candidates_first_completed_wins() {
    // "bc" completes before "abcd" would: truncate before "bc".
    assert_eq!(
        run(&["abcd", "bc"], &["xabcde"]),
        ("xa".into(), Some(Stop::String { index: 1 }))
    );
    for deltas in splits("xabcde", 3) {
        assert_eq!(run(&["abcd", "bc"], &deltas).0, "xa", "deltas {deltas:?}");
    }
    // Held "abc" (prefix of "abcx") turns into a "bcd" match.
    assert_eq!(
        run(&["abcx", "bcd"], &["a", "b", "c", "d"]),
        ("a".into(), Some(Stop::String { index: 1 }))
    );
    // Same end: the longer stop string wins (earlier start).
    assert_eq!(
        run(&["c", "abc"], &["zabc"]),
        ("z".into(), Some(Stop::String { index: 1 }))
    );
    // Self-overlapping stop string.
    assert_eq!(
        run(&["aab"], &["a", "a", "a", "b"]),
        ("a".into(), Some(Stop::String { index: 0 }))
    );
}

#[test]
fn stop_at_the_very_start() {
    assert_eq!(
        run(&["STOP"], &["STOP", "after"]),
        (String::new(), Some(Stop::String { index: 0 }))
    );
    assert_eq!(
        run(&["STOP"], &["S", "TOP"]),
        (String::new(), Some(Stop::String { index: 0 }))
    );
}

#[test]
fn unicode_stop_strings() {
    let mut checker = StopChecker::new(&stops(&["終わり", "🛑"]));
    assert_eq!(
        checker.push("こんにちは終"),
        ("こんにちは".to_string(), None)
    );
    assert_eq!(checker.held_text(), "終");
    assert_eq!(checker.push("わ"), (String::new(), None));
    assert_eq!(checker.push("らない"), ("終わらない".to_string(), None));
    assert_eq!(
        checker.push("x🛑y"),
        ("x".to_string(), Some(Stop::String { index: 1 }))
    );

    let text = "héllo wörld 終わり!";
    for num_pieces in 1..=4 {
        for deltas in splits(text, num_pieces) {
            assert_eq!(
                run(&["終わり"], &deltas),
                ("héllo wörld ".into(), Some(Stop::String { index: 0 })),
                "deltas {deltas:?}"
            );
        }
    }
}

#[test]
fn no_false_holds_and_flush_returns_held_text() {
    // Text that cannot start a stop string is emitted at once.
    let mut checker = StopChecker::new(&stops(&["xyz"]));
    assert_eq!(checker.push("abc"), ("abc".to_string(), None));
    assert_eq!(checker.held_text(), "");
    // A trailing prefix is held, then released by flush.
    let mut checker = StopChecker::new(&stops(&["STOP"]));
    assert_eq!(
        checker.push("ends with ST"),
        ("ends with ".to_string(), None)
    );
    assert_eq!(checker.flush(), "ST");
    assert_eq!(checker.flush(), "");
    // Without a match, the whole text comes back for every split.
    let text = "no S-T-O-P here, just STO";
    for num_pieces in 1..=3 {
        for deltas in splits(text, num_pieces) {
            assert_eq!(
                run(&["STOP"], &deltas),
                (text.into(), None),
                "deltas {deltas:?}"
            );
        }
    }
}

#[test]
fn no_stop_strings_and_empty_stop_strings_pass_everything() {
    assert_eq!(run(&[], &["a", "b"]), ("ab".into(), None));
    assert_eq!(run(&[""], &["a", "b"]), ("ab".into(), None));
    // Indices refer to the request's list, empty entries included.
    assert_eq!(
        run(&["", "b"], &["ab"]),
        ("a".into(), Some(Stop::String { index: 1 }))
    );
}

#[test]
fn token_stopper_eos_stop_ids_and_length() {
    let params = SamplingParams {
        max_tokens: Some(5),
        stop_token_ids: vec![7],
        ..SamplingParams::default()
    };
    let stopper = TokenStopper::new(&params, &[2, 3], 10, 100);
    assert_eq!(stopper.max_output_tokens(), 5);
    assert_eq!(stopper.check(1, 1), None);
    assert_eq!(stopper.check(2, 1), Some(Stop::Eos(2)));
    assert_eq!(stopper.check(3, 2), Some(Stop::Eos(3)));
    assert_eq!(stopper.check(7, 2), Some(Stop::TokenId(7)));
    assert_eq!(stopper.check(1, 5), Some(Stop::Length));
    // A stop token as the last allowed token reports Stop, not Length.
    assert_eq!(stopper.check(2, 5), Some(Stop::Eos(2)));
    assert_eq!(Stop::Eos(2).finish_reason(), FinishReason::Stop);
    assert_eq!(
        Stop::String { index: 0 }.finish_reason(),
        FinishReason::Stop
    );
    assert_eq!(Stop::Length.finish_reason(), FinishReason::Length);

    let ignore = SamplingParams {
        ignore_eos: true,
        stop_token_ids: vec![3],
        ..params.clone()
    };
    let stopper = TokenStopper::new(&ignore, &[2, 3], 10, 100);
    assert_eq!(stopper.check(2, 1), None, "ignore_eos");
    assert_eq!(
        stopper.check(3, 1),
        Some(Stop::TokenId(3)),
        "explicit stop ids still stop"
    );

    // The context limit caps max_tokens, and applies when max_tokens is None.
    let stopper = TokenStopper::new(&params, &[2], 98, 100);
    assert_eq!(stopper.max_output_tokens(), 2);
    let unlimited = SamplingParams {
        max_tokens: None,
        ..params
    };
    let stopper = TokenStopper::new(&unlimited, &[2], 90, 100);
    assert_eq!(stopper.max_output_tokens(), 10);
    assert_eq!(stopper.check(1, 9), None);
    assert_eq!(stopper.check(1, 10), Some(Stop::Length));
}
