//! Writers for the formats REALM's published checkpoints use, so tests can build a REALM
//! checkpoint directory from the tiny fixture: `torch.save`'s zip of a pickled state dict,
//! and numpy's pickled object array (`block_records.npy`). The readers are checked against
//! files the real libraries wrote (`tests/fixtures/`); these writers only feed them more.

use std::io::Write;

use realm_core::checkpoint::weights::WeightMap;

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

fn int(out: &mut Vec<u8>, v: i32) {
    out.push(b'J');
    out.extend(v.to_le_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend(format!("{module}\n{name}\n").as_bytes());
}

/// A `torch.save(state_dict)` zip (protocol 2 pickle, one FloatStorage per tensor).
pub fn torch_state_dict(weights: &WeightMap) -> Vec<u8> {
    let mut pickle = vec![0x80, 2];
    global(&mut pickle, "collections", "OrderedDict");
    pickle.extend(b")R(");
    for (i, (name, tensor)) in weights.iter().enumerate() {
        unicode(&mut pickle, name);
        global(&mut pickle, "torch._utils", "_rebuild_tensor_v2");
        pickle.push(b'(');
        // The storage, as a persistent id: ('storage', FloatStorage, key, location, numel).
        pickle.push(b'(');
        unicode(&mut pickle, "storage");
        global(&mut pickle, "torch", "FloatStorage");
        unicode(&mut pickle, &i.to_string());
        unicode(&mut pickle, "cpu");
        int(&mut pickle, tensor.data.len() as i32);
        pickle.extend(b"tQ");
        int(&mut pickle, 0); // storage offset
        pickle.push(b'(');
        for &d in &tensor.shape {
            int(&mut pickle, d as i32);
        }
        pickle.push(b't');
        pickle.push(b'(');
        let mut stride = 1;
        let mut strides = vec![0; tensor.shape.len()];
        for (s, &d) in strides.iter_mut().zip(&tensor.shape).rev() {
            *s = stride;
            stride *= d;
        }
        for s in strides {
            int(&mut pickle, s as i32);
        }
        pickle.push(b't');
        pickle.push(0x89); // requires_grad = False
        global(&mut pickle, "collections", "OrderedDict");
        pickle.extend(b")Rt"); // backward hooks; close the argument tuple
        pickle.push(b'R');
    }
    pickle.extend(b"u.");

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let entry = |zip: &mut zip::ZipWriter<_>, name: &str, bytes: &[u8]| {
        zip.start_file(format!("archive/{name}"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry(&mut zip, "data.pkl", &pickle);
    for (i, tensor) in weights.values().enumerate() {
        let bytes: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        entry(&mut zip, &format!("data/{i}"), &bytes);
    }
    entry(&mut zip, "version", b"3\n");
    entry(&mut zip, "byteorder", b"little");
    zip.finish().unwrap().into_inner()
}

/// `np.save(path, np.array(records, dtype=object))` as numpy 1.x writes it (protocol 2).
pub fn numpy_object_array(records: &[&str]) -> Vec<u8> {
    let mut pickle = vec![0x80, 2];
    global(&mut pickle, "numpy.core.multiarray", "_reconstruct");
    global(&mut pickle, "numpy", "ndarray");
    pickle.extend(b"K\x00\x85C\x01b\x87R(K\x01");
    int(&mut pickle, records.len() as i32);
    pickle.push(0x85);
    global(&mut pickle, "numpy", "dtype");
    pickle.extend(b"X\x02\x00\x00\x00O8\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb");
    pickle.extend(b"\x89](");
    for r in records {
        pickle.push(b'B');
        pickle.extend((r.len() as u32).to_le_bytes());
        pickle.extend(r.as_bytes());
    }
    pickle.extend(b"etb.");
    let header = format!(
        "{{'descr': '|O', 'fortran_order': False, 'shape': ({},), }}",
        records.len()
    );
    let padded = format!("{header:<117}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((padded.len() as u16).to_le_bytes());
    out.extend(padded.as_bytes());
    out.extend(pickle);
    out
}
