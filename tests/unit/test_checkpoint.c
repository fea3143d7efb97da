/* test_checkpoint.c — weights and state files: a state_dict exported by PyTorch loads into the matching model
 * (values, counters), strict / ignore rules and their messages, a wrong-shaped tensor, and a save → load round
 * trip that reproduces the file byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/init.h"
#include "model/resnet.h"
#include "testutil.h"

static Backend *be;

static void build(Model *m, int classes) {
    static char name[] = "resnet8";
    ResnetOptions o = {.model_name = name, .num_classes = classes, .groups = 1, .width_per_group = 64, .width = 4,
                       .stem = STEM_CIFAR};
    Error err;
    assert_int_equal(resnet_build(&o, 1, m, &err), 0);
    assert_int_equal(model_alloc(m, be, &err), 0);
    assert_int_equal(init_weights(m, &o, 1, &err), 0);
}

static void test_load_pytorch_export(void **state) {
    (void)state;
    const char *path = tu_fixture("torch_state_dict_resnet8_w4.safetensors");
    Model m;
    build(&m, 7);
    Error err = {{0}};
    LoadRules strict = {.strict = true};
    if (ckpt_load_weights(&m, path, &strict, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_true(err.msg[0] == 0);
    /* every value is the file's, including BN buffers and num_batches_tracked (3 in the export) */
    SafeTensors *st;
    assert_int_equal(st_open(path, &st, &err), 0);
    for (int i = 0; i < m.n_params; i++) {
        const Param *p = &m.params[i];
        const StTensor *t = st_get(st, p->name);
        assert_non_null(t);
        if (p->kind == PARAM_COUNTER) {
            int64_t v;
            memcpy(&v, t->data, sizeof v);
            assert_int_equal(m.counters[p->offset], v);
            assert_int_equal(v, 3);
            continue;
        }
        float *ref = malloc((size_t)p->numel * sizeof *ref);
        assert_int_equal(st_read_f32(t, ref, p->numel, &err), 0);
        assert_memory_equal(model_param_data(&m, i), ref, (size_t)p->numel * sizeof *ref);
        free(ref);
    }
    st_close(st);

    /* save → load → save gives the same bytes */
    char a[512], b[512];
    const char *dir = tu_tempdir();
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    assert_int_equal(ckpt_save_weights(&m, a, 0, NULL, NULL, &err), 0);
    Model m2;
    build(&m2, 7);
    assert_int_equal(ckpt_load_weights(&m2, a, &strict, &err), 0);
    assert_int_equal(ckpt_save_weights(&m2, b, 0, NULL, NULL, &err), 0);
    uint8_t *da, *db;
    size_t na, nb;
    assert_int_equal(fs_read_all(a, &da, &na, &err), 0);
    assert_int_equal(fs_read_all(b, &db, &nb, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
    model_free(&m2);
    model_free(&m);
}

static void test_rules_and_errors(void **state) {
    (void)state;
    const char *path = tu_fixture("torch_state_dict_resnet8_w4.safetensors");
    Error err = {{0}};
    LoadRules strict = {.strict = true};
    /* a head of another size: the shapes are named */
    Model m;
    build(&m, 10);
    assert_int_equal(ckpt_load_weights(&m, path, &strict, &err), -1);
    assert_non_null(strstr(err.msg, "'fc.weight' has shape [7, 16] but the model expects [10, 16]"));
    assert_non_null(strstr(err.msg, path));
    /* ...unless the head is ignored, which keeps the model's own fc */
    float before = model_param_data(&m, model_find_param(&m, "fc.weight"))[3];
    char *keys[2] = {"fc.weight", "fc.bias"};
    StringList ignore = {.v = {keys[0], keys[1]}, .n = 2};
    LoadRules fine_tune = {.strict = true, .ignore = &ignore};
    assert_int_equal(ckpt_load_weights(&m, path, &fine_tune, &err), 0);
    assert_true(model_param_data(&m, model_find_param(&m, "fc.weight"))[3] == before);
    model_free(&m);

    /* a different architecture: unexpected keys come first and say what to check */
    ResnetOptions o = {.model_name = "resnet14", .num_classes = 7, .groups = 1, .width_per_group = 64, .width = 4,
                       .stem = STEM_CIFAR};
    Model deeper;
    assert_int_equal(resnet_build(&o, 1, &deeper, &err), 0);
    assert_int_equal(model_alloc(&deeper, be, &err), 0);
    assert_int_equal(ckpt_load_weights(&deeper, path, &strict, &err), -1);
    assert_non_null(strstr(err.msg, "missing key 'layer1.1.conv1.weight'"));
    model_free(&deeper);

    /* a state file that is not one */
    Model s;
    build(&s, 7);
    Optimizer opt = {0};
    Progress pg;
    assert_int_equal(ckpt_load_state(&s, &opt, &pg, NULL, path, &err), -1);
    assert_non_null(strstr(err.msg, "not a ctrain state file"));
    model_free(&s);
}

static int setup(void **state) {
    (void)state;
    Error err;
    return backend_create("cpu", 2, &be, &err);
}

static int teardown(void **state) {
    (void)state;
    backend_destroy(be);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_pytorch_export),
        cmocka_unit_test(test_rules_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
