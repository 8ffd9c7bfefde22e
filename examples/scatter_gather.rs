//! ipyparallel's scatter and gather notebook (a direct view scatters user
//! ids, the engines transform them, the client gathers them), in Rust.
//! Run it with `rankview run -n 8 --example scatter_gather` (7 engines, as in
//! the notebook) or with any other number of ranks.
//!
//! 1000 user ids are scattered over every engine; each engine reports its
//! chunk's length and maximum (for 7 engines: six chunks of 143, one of 142);
//! each engine transforms its ids with `"ID:{}"` of `3 * id`; `gather` brings
//! back the 1000 strings in order.

use rankview::{globals, TaskResult};

/// Prints and returns the length and maximum of this engine's chunk.
#[rankview::remote]
fn describe_chunk() -> TaskResult<(usize, Option<u64>)> {
    let chunk = globals().get::<Vec<u64>>("user_id_chunk")?;
    println!("Len {}", chunk.len());
    if let Some(max) = chunk.iter().max() {
        println!("Max {max}");
    }
    Ok((chunk.len(), chunk.iter().max().copied()))
}

fn the_most_interesting_transformation_ever(user_id: u64) -> String {
    format!("ID:{}", user_id * 3)
}

/// `transformed_user_ids = list(map(transformation, user_id_chunk))`
#[rankview::remote]
fn transform_chunk() -> TaskResult<()> {
    let chunk = globals().get::<Vec<u64>>("user_id_chunk")?;
    let transformed: Vec<String> = chunk
        .iter()
        .map(|&id| the_most_interesting_transformation_ever(id))
        .collect();
    globals().insert("transformed_user_ids", transformed)?;
    Ok(())
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        println!("rc.ids = {:?}", rc.ids());
        let dv = rc.all();
        println!("{dv:?}");

        let user_ids: Vec<u64> = (0..1000).collect();
        dv.scatter("user_id_chunk", &user_ids).get()?;

        let described = dv.apply(describe_chunk, ());
        let chunks = described.get()?;
        described.display_outputs();
        // ipyparallel's rule: n / p each, the first n % p engines one more.
        let p = rc.len();
        let mut start = 0u64;
        for (k, (len, max)) in chunks.iter().enumerate() {
            let expected = 1000 / p + usize::from(k < 1000 % p);
            assert_eq!(*len, expected, "engine {k}");
            start += expected as u64;
            assert_eq!(*max, Some(start - 1), "engine {k}");
        }
        assert_eq!(start, 1000);

        assert_eq!(the_most_interesting_transformation_ever(1), "ID:3");
        dv.apply_sync(transform_chunk, ())?;
        let all_transformed_user_ids: Vec<String> = dv.gather("transformed_user_ids").get()?;
        println!("{}", all_transformed_user_ids.len());
        println!("{:?}", &all_transformed_user_ids[0..10]);
        assert_eq!(all_transformed_user_ids.len(), 1000);
        let expected: Vec<String> = user_ids
            .iter()
            .map(|&id| the_most_interesting_transformation_ever(id))
            .collect();
        assert_eq!(all_transformed_user_ids, expected);
        assert_eq!(all_transformed_user_ids[9], "ID:27");
        Ok(())
    });
}
