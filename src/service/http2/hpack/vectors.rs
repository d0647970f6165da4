//! RFC 7541 Appendix C: the worked examples, decoded block after block on
//! one decoder, checking the fields and the dynamic table after each.

use super::Decoder;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Decodes `block` and checks the fields, the table's entries (newest
/// first) and its size.
fn step(
    decoder: &mut Decoder,
    block: &str,
    fields: &[(&str, &str)],
    table: &[(&str, &str)],
    size: usize,
) {
    let mut decoded = Vec::new();
    decoder
        .decode(&hex(block), |name, value| {
            decoded.push((
                String::from_utf8(name.to_vec()).unwrap(),
                String::from_utf8(value.to_vec()).unwrap(),
            ))
        })
        .unwrap_or_else(|err| panic!("{block}: {err}"));
    let expected: Vec<(String, String)> = fields
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    assert_eq!(decoded, expected, "{block}");
    let entries: Vec<(&str, &str)> = (0..decoder.table().len())
        .map(|at| {
            let (name, value) = decoder.table().get(at).unwrap();
            (
                std::str::from_utf8(name).unwrap(),
                std::str::from_utf8(value).unwrap(),
            )
        })
        .collect();
    assert_eq!(entries, table, "{block}");
    assert_eq!(decoder.table().size(), size, "{block}");
}

#[test]
fn c2_literal_field_representations() {
    let mut decoder = Decoder::new(4096);
    step(
        &mut decoder,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        &[("custom-key", "custom-header")],
        &[("custom-key", "custom-header")],
        55,
    );
    let mut decoder = Decoder::new(4096);
    step(
        &mut decoder,
        "040c 2f73 616d 706c 652f 7061 7468",
        &[(":path", "/sample/path")],
        &[],
        0,
    );
    let mut decoder = Decoder::new(4096);
    step(
        &mut decoder,
        "1008 7061 7373 776f 7264 0673 6563 7265 74",
        &[("password", "secret")],
        &[],
        0,
    );
    let mut decoder = Decoder::new(4096);
    step(&mut decoder, "82", &[(":method", "GET")], &[], 0);
}

const REQUEST_1: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQUEST_2: [(&str, &str); 5] = [
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQUEST_3: [(&str, &str); 5] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const TABLE_1: [(&str, &str); 1] = [(":authority", "www.example.com")];
const TABLE_2: [(&str, &str); 2] = [
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const TABLE_3: [(&str, &str); 3] = [
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    let mut decoder = Decoder::new(4096);
    step(
        &mut decoder,
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        &REQUEST_1,
        &TABLE_1,
        57,
    );
    step(
        &mut decoder,
        "8286 84be 5808 6e6f 2d63 6163 6865",
        &REQUEST_2,
        &TABLE_2,
        110,
    );
    step(
        &mut decoder,
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        &REQUEST_3,
        &TABLE_3,
        164,
    );
}

#[test]
fn c4_requests_with_huffman() {
    let mut decoder = Decoder::new(4096);
    step(
        &mut decoder,
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        &REQUEST_1,
        &TABLE_1,
        57,
    );
    step(
        &mut decoder,
        "8286 84be 5886 a8eb 1064 9cbf",
        &REQUEST_2,
        &TABLE_2,
        110,
    );
    step(
        &mut decoder,
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        &REQUEST_3,
        &TABLE_3,
        164,
    );
}

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

/// C.5 and C.6 decode the same three responses with a 256-octet table.
fn responses(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(256);
    step(
        &mut decoder,
        blocks[0],
        &[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", DATE_1),
            ("location", LOCATION),
        ],
        &[
            ("location", LOCATION),
            ("date", DATE_1),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    );
    step(
        &mut decoder,
        blocks[1],
        &[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", DATE_1),
            ("location", LOCATION),
        ],
        &[
            (":status", "307"),
            ("location", LOCATION),
            ("date", DATE_1),
            ("cache-control", "private"),
        ],
        222,
    );
    step(
        &mut decoder,
        blocks[2],
        &[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", DATE_2),
            ("location", LOCATION),
            ("content-encoding", "gzip"),
            ("set-cookie", COOKIE),
        ],
        &[
            ("set-cookie", COOKIE),
            ("content-encoding", "gzip"),
            ("date", DATE_2),
        ],
        215,
    );
}

#[test]
fn c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}
