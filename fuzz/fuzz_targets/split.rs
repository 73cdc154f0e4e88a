//! Message splitting and decoding: any bytes a producer can write become events or a refusal
//! with a reason, never a panic, and the refusals say what the dead letter will carry.
#![no_main]

use hookline::dlq::Reason;
use hookline::source::split::split;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    match split(Some(data), MAX) {
        Ok(elements) => {
            assert!(!elements.is_empty(), "an accepted message has an event");
            for element in elements {
                match element {
                    Ok(event) => assert!(event.is_object(), "every event is an object"),
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
