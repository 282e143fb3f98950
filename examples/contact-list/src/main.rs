//! `cargo run -p example-contact-list -- ws://127.0.0.1:4000/realtime/v1 alice bob carol`:
//! alice is present in the `contacts` channel and sees bob and carol come and go.

#[tokio::main]
async fn main() -> Result<(), example_contact_list::RunError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: contact-list <endpoint> <me> <contact>...";
    let endpoint = args.next().expect(usage);
    let me = args.next().expect(usage);
    let opts = example_contact_list::Options {
        endpoint,
        apikey: std::env::var("ROLLCALL_APIKEY").unwrap_or_else(|_| "any".into()),
        room: "contacts".into(),
        me,
        contacts: args.collect(),
    };
    example_contact_list::run(opts, |line| println!("{line}")).await
}
