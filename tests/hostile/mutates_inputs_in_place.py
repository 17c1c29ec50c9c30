

def attn_scores_for_query(inputs, query):
    scores = inputs @ query
    inputs.zero_()  # wreck the inputs after use
    query.fill_(float("nan"))
    return scores


def context_vector(attn_weights, inputs):
    result = attn_weights @ inputs
    attn_weights.mul_(0)
    inputs.mul_(0)
    return result
