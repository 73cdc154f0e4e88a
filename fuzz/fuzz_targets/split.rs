//! Message splitting and decoding: any bytes a producer can write become events or a refusal
//! with a reason, never a panic, and the refusals say what the dead letter will carry.
#![no_main]

use hookline::dlq::Reason;
use hookline::event::Wanted;
use hookline::source::split::split;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // Half the inputs are parsed keeping one field, as the rules usually ask.
    let mut wanted = Wanted::All;
    if data.first().is_some_and(|b| b % 2 == 0) {
        wanted = Wanted::nothing();
        wanted.add([Some("a")].into_iter());
    }
    match split(Some(data), MAX, &wanted) {
        Ok(elements) => {
            assert!(!elements.is_empty(), "an accepted message has an event");
            for element in elements {
                match element {
                    Ok(event) => {
                        assert!(event.view().is_object(), "every event is an object");
                        // The whole event is what its bytes parse to, or neither parses (a
                        // skipped number beyond f64, a lone surrogate).
                        let parsed = serde_json::from_slice::<serde_json::Value>(&event.json());
                        match (event.whole(), parsed) {
                            (Ok(whole), Ok(parsed)) => assert_eq!(*whole, parsed),
                            (Err(_), Err(_)) => {}
                            (whole, parsed) => panic!("whole {whole:?}, bytes {parsed:?}"),
                        }
                    }
                    Err(refused) => {
                        assert_eq!(refused.reason, Reason::NotAnEvent);
                        let element = refused.element.expect("a bad element is carried");
                        assert!(!element.is_object());
                    }
                }
            }
        }
        Err(refused) => {
            assert!(
                refused.element.is_none(),
                "a whole-message refusal carries no element"
            );
            if data.len() > MAX {
                assert_eq!(refused.reason, Reason::TooLarge);
            }
        }
    }
});
